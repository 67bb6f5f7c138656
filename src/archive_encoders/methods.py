"""The registry of fine-tuning method types: what each trains, what it reads, what it costs.

One entry per type. The config check, the rules (inputs, memory, GPU) and the training code all read
this table, so adding a method type is: one `MethodType` here, its training phase in `train.py`, its
hyperparameters in the config schema (docs/ARCHITECTURE.md, "Adding a method type").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Hyperparameters every training type reads (the rest of the schema's method keys are type-specific).
COMMON_KEYS = ("epochs", "max_steps", "batch_size", "learning_rate", "warmup_ratio", "weight_decay")
LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")


@dataclass(frozen=True)
class MethodType:
    name: str
    summary: str
    trains: str  # "nothing", "all weights", "adapters" (merged for export)
    phases: tuple[str, ...]  # training phases in order (train.PHASES); extra ones switched on by a key
    needs: tuple[str, ...]  # datasets it always reads (paths.DATASETS keys)
    keys: tuple[str, ...]  # its hyperparameters (what the model card records)
    mem_mb: int  # host memory a training job declares (rules' resources, cluster placement)
    uses_gpu: bool  # takes a GPU when the cluster profile gives one
    optional: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    # optional: {boolean hyperparameter: (extra phases, extra datasets)} when the key is true

    def phases_for(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        extra = tuple(p for key, (phases, _) in self.optional.items() if params.get(key) for p in phases)
        return self.phases + extra

    def needs_for(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        extra = tuple(d for key, (_, data) in self.optional.items() if params.get(key) for d in data)
        return tuple(dict.fromkeys(self.needs + extra))

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
            needs=(),
            keys=(),
            mem_mb=4000,
            uses_gpu=False,
        ),
        MethodType(
            "full",
            "MultipleNegativesRankingLoss on mined triplets, every weight trained",
            trains="all weights",
            phases=("mnrl",),
            needs=("triplets",),
            keys=COMMON_KEYS,
            mem_mb=16000,
            uses_gpu=True,
        ),
        MethodType(
            "lora",
            "peft LoRA adapters trained with MNRL, merged into the weights for export",
            trains="adapters",
            phases=("mnrl",),
            needs=("triplets",),
            keys=(*COMMON_KEYS, *LORA_KEYS),
            mem_mb=12000,
            uses_gpu=True,
        ),
        MethodType(
            "qlora",
            "LoRA on a 4-bit NF4 base (bitsandbytes), merged onto the fp32 base for export",
            trains="adapters",
            phases=("mnrl",),
            needs=("triplets",),
            keys=(*COMMON_KEYS, *LORA_KEYS),
            mem_mb=12000,
            uses_gpu=True,
        ),
        MethodType(
            "tsdae",
            "denoising auto-encoder on the corpus (unsupervised), optionally followed by MNRL",
            trains="all weights",
            phases=("tsdae",),
            needs=("tsdae_pairs",),
            keys=(*COMMON_KEYS, "then_mnrl"),
            mem_mb=16000,
            uses_gpu=True,
            optional={"then_mnrl": (("mnrl",), ("triplets",))},
        ),
        MethodType(
            "distill",
            "MSE to a teacher's embeddings, optionally into a student with fewer layers",
            trains="all weights",
            phases=("distill",),
            needs=("teacher_embeddings",),
            keys=(*COMMON_KEYS, "teacher", "student_layers"),
            mem_mb=16000,
            uses_gpu=True,
        ),
    )
}


def method_type(name: str) -> MethodType:
    try:
        return METHOD_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown method type {name!r}; expected one of {list(METHOD_TYPES)}") from None
