"""The registry of fine-tuning method types: what each trains, what it reads, what it costs.

One entry per type. The config check, the rules (inputs, memory, GPU) and the training code all read
this table, so adding a method type is: one `MethodType` here, its training phase in `train/phases.py`
and `train/run.py`, its hyperparameters in the config schema (docs/ARCHITECTURE.md, "Adding a method type").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Training phases, in the order they run when a method has several (TSDAE first: it adapts the encoder
# to the corpus; distillation before MNRL: the student first learns its teacher's space, then the pairs),
# with the dataset each reads (paths.DATASETS).
PHASES = {
    "tsdae": "tsdae_pairs",  # DenoisingAutoEncoderLoss on (noisy, text)
    "distill": "teacher_embeddings",  # MSELoss to a teacher's embeddings of passages and queries
    "mnrl": "triplets",  # CachedMultipleNegativesRankingLoss on (anchor, positive, negative)
    "margin_mse": "teacher_scores",  # MarginMSELoss to a teacher's score margins (GPL)
}
# Hyperparameters every training type reads (the rest of the schema's method keys are type-specific).
COMMON_KEYS = (
    "epochs",
    "max_steps",
    "batch_size",
    "mini_batch_size",
    "learning_rate",
    "warmup_ratio",
    "weight_decay",
    "eval_steps",
    "patience",
)
LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")


@dataclass(frozen=True)
class MethodType:
    name: str
    summary: str
    trains: str  # "nothing", "all weights", "adapters" (merged for export)
    phases: tuple[str, ...]  # its own training phases (PHASES), trained with the method's top-level keys
    keys: tuple[str, ...]  # its hyperparameters (what the model card records)
    mem_mb: int  # host memory a training job declares (rules' resources, cluster placement)
    uses_gpu: bool  # takes a GPU when the config's device allows one
    # {boolean hyperparameter: (extra phase, the key of that phase's own settings)} when the key is true
    optional: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    teacher: str | None = None  # the teacher it learns from: "bi-encoder" (embeddings), "any" (scores)
    requires: tuple[str, ...] = ()  # Python packages it cannot run without

    def phases_for(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Every phase the method runs with these settings, in PHASES order."""
        extra = {phase for key, (phase, _) in self.optional.items() if params.get(key)}
        return tuple(p for p in PHASES if p in set(self.phases) | extra)

    def needs_for(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The datasets (paths.DATASETS keys) those phases read."""
        return tuple(dict.fromkeys(PHASES[p] for p in self.phases_for(params)))

    def settings_for(self, phase: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """A phase's hyperparameters: an optional phase has its own section (tsdae's `mnrl`, gpl's
        `tsdae`), so the MNRL after TSDAE does not inherit TSDAE's batch size and learning rate."""
        for _, (extra, key) in self.optional.items():
            if extra == phase and phase not in self.phases:
                return {**params, **params[key]}
        return params

    @property
    def trains_all_weights(self) -> bool:
        return self.trains == "all weights"


METHOD_TYPES: dict[str, MethodType] = {
    m.name: m
    for m in (
        MethodType(
            "baseline",
            "the candidate unchanged: the reference every method is compared with",
            trains="nothing",
            phases=(),
            keys=(),
            mem_mb=4000,
            uses_gpu=False,
        ),
        MethodType(
            "full",
            "MultipleNegativesRankingLoss (GradCache) on mined triplets, every weight trained",
            trains="all weights",
            phases=("mnrl",),
            keys=COMMON_KEYS,
            mem_mb=16000,
            uses_gpu=True,
        ),
        MethodType(
            "lora",
            "peft LoRA adapters trained with MNRL, merged into the weights for export",
            trains="adapters",
            phases=("mnrl",),
            keys=(*COMMON_KEYS, *LORA_KEYS),
            mem_mb=12000,
            uses_gpu=True,
        ),
        MethodType(
            "qlora",
            "LoRA on a 4-bit NF4 base (bitsandbytes), merged onto the fp32 base for export",
            trains="adapters",
            phases=("mnrl",),
            keys=(*COMMON_KEYS, *LORA_KEYS),
            mem_mb=12000,
            uses_gpu=True,
            requires=("bitsandbytes",),
        ),
        MethodType(
            "tsdae",
            "denoising auto-encoder on the corpus (unsupervised), optionally followed by MNRL",
            trains="all weights",
            phases=("tsdae",),
            keys=(*COMMON_KEYS, "then_mnrl", "mnrl"),
            mem_mb=16000,
            uses_gpu=True,
            optional={"then_mnrl": ("mnrl", "mnrl")},
        ),
        MethodType(
            "gpl",
            "GPL: MarginMSE to a teacher's score margins on pseudo-queries with mined negatives, "
            "optionally after TSDAE",
            trains="all weights",
            phases=("margin_mse",),
            keys=(*COMMON_KEYS, "teacher", "tsdae_first", "tsdae"),
            mem_mb=16000,
            uses_gpu=True,
            optional={"tsdae_first": ("tsdae", "tsdae")},
            teacher="any",
        ),
        MethodType(
            "distill",
            "MSE to a teacher's embeddings of passages and queries, optionally into a student with fewer "
            "layers, optionally followed by MNRL on the triplets",
            trains="all weights",
            phases=("distill",),
            keys=(*COMMON_KEYS, "teacher", "student_layers", "freeze_embeddings", "then_mnrl", "mnrl"),
            mem_mb=16000,
            uses_gpu=True,
            optional={"then_mnrl": ("mnrl", "mnrl")},
            teacher="bi-encoder",
        ),
    )
}


def method_type(name: str) -> MethodType:
    try:
        return METHOD_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown method type {name!r}; expected one of {list(METHOD_TYPES)}") from None
