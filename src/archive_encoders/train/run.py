"""Fine-tune one candidate encoder with one method.

`train` follows the numbered shape of sentence-transformers' training examples (model, data, loss,
evaluator, arguments, trainer, evaluate, save) for every method type (methods.py):

- baseline: the model unchanged (zero steps), so the matrix has a reference row;
- full: CachedMultipleNegativesRankingLoss (MNRL with GradCache) on the mined triplets, every weight
  trained; batches keep examples that are each other's positives apart (batching.SourceBatchSampler);
- lora: peft LoRA adapters trained with MNRL, merged into the weights for export;
- qlora: a 4-bit NF4 base (bitsandbytes) + LoRA, the adapter merged onto the fp32 base for export;
- tsdae: DenoisingAutoEncoderLoss on our noisy pairs, optionally followed by an MNRL phase with its own
  settings (then_mnrl, mnrl);
- gpl: MarginMSELoss to a teacher's score margins on the triplets (teachers.teacher_scores), optionally
  after a TSDAE phase (tsdae_first, tsdae);
- distill: MSE to the teacher's cached embeddings of train passages and pseudo-queries, each side with
  its own prefixes (PCA-projected when the teacher is wider), optionally into fewer layers, optionally
  followed by an MNRL phase on the triplets with its own settings (then_mnrl, mnrl).

A phase trains `batch_size` examples per optimizer step with at most `mini_batch_size` texts encoded
with gradients at once (GradCache for MNRL, gradient accumulation for the others), so peak memory is
set by the mini-batch. With the val query sets among the inputs, every phase validates as it goes and
ends on its best weights (validation.py). Every setting comes from the arguments; the output folder
appears atomically with train_metrics.json (fields in docs/ARCHITECTURE.md) and a model card.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from archive_encoders.config import ConfigError, ModelSpec, default_seed, with_defaults
from archive_encoders.io import atomic_dir, write_json, write_text
from archive_encoders.methods import METHOD_TYPES
from archive_encoders.system import current_rss_mb, peak_rss_mb, pick_device, release_freed_memory
from archive_encoders.train.phases import PhaseData, load_data
from archive_encoders.train.record import model_card, pair_kinds, train_record
from archive_encoders.train.trainable import count_params, load_model, merge_adapter

log = logging.getLogger(__name__)

PROBE_TEXTS = 16  # texts encoded before and after a LoRA merge to check the export matches what was trained


# --- 1. model: trainable.load_model; 2. data ---


# --- 3. loss ---


def make_loss(phase: str, model, settings: dict[str, Any]):
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.util import pairwise_cos_sim

    if phase == "mnrl":
        # GradCache: the batch's in-batch negatives at the memory of one mini-batch
        return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=settings["mini_batch_size"])
    if phase == "tsdae":
        # the decoder is built from the encoder's own folder and shares its weights (tie_encoder_decoder)
        return losses.DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
    if phase == "margin_mse":
        # cosine like the evaluation; the teacher's scores are on a comparable scale (teachers.py)
        return losses.MarginMSELoss(model, similarity_fct=pairwise_cos_sim)
    if phase == "distill":
        return losses.MSELoss(model)
    raise ValueError(f"unknown training phase {phase!r}")


# --- 4. evaluator: validation.ValidationSets on the val query sets, built once per run in train() ---


# --- 5. arguments ---


def batch_shape(settings: dict[str, Any], phase: str) -> tuple[int, int]:
    """(examples per forward batch, gradient-accumulation steps): MNRL takes the whole batch at once
    (its loss caches gradients per mini-batch); the other losses accumulate mini-batches."""
    if phase == "mnrl":
        return settings["batch_size"], 1
    mini = min(settings["mini_batch_size"], settings["batch_size"])
    return mini, max(1, settings["batch_size"] // mini)


def training_arguments(settings: dict[str, Any], phase: str, seed: int, device: str, work_dir: str):
    import torch
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    per_device, accumulation = batch_shape(settings, phase)
    return SentenceTransformerTrainingArguments(
        output_dir=work_dir,
        num_train_epochs=settings["epochs"],
        max_steps=settings["max_steps"],
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=settings["learning_rate"],
        # transformers 5 takes a ratio as a float below 1 in warmup_steps (warmup_ratio is gone)
        warmup_steps=min(float(settings["warmup_ratio"]), 0.999),
        weight_decay=settings["weight_decay"],
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        bf16=device == "cuda" and torch.cuda.is_bf16_supported(),
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",  # validation keeps the best weights in memory (validation.py)
        report_to="none",
        push_to_hub=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


# --- 6. trainer ---


def _trainer(model, args, data: PhaseData, loss, callbacks):
    """A SentenceTransformerTrainer whose batches come from SourceBatchSampler when the phase knows its
    examples' sources (MNRL), so no example is another's false negative (batching.py)."""
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from transformers.trainer_callback import PrinterCallback

    from archive_encoders.train.batching import SourceBatchSampler

    class Trainer(SentenceTransformerTrainer):
        def get_batch_sampler(
            self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0
        ):
            if data.sources is None:  # (only the train set is batched here: no eval datasets)
                return super().get_batch_sampler(
                    dataset, batch_size, drop_last, valid_label_columns, generator, seed
                )
            return SourceBatchSampler(
                dataset, batch_size, drop_last, valid_label_columns, generator, seed, sources=data.sources
            )

    trainer = Trainer(model=model, args=args, train_dataset=data.dataset, loss=loss, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    return trainer


def _step_log(memory: dict[int, float | None]):
    from transformers import TrainerCallback

    class StepLog(TrainerCallback):
        """Losses to the job log (stdout is not the log under Snakemake), resident memory per step."""

        def on_step_end(self, args, state, control, **kwargs):
            release_freed_memory()
            memory[state.global_step] = current_rss_mb()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                rss = memory.get(state.global_step)
                log.info(
                    "step %d/%d loss %.4f rss %s MB",
                    state.global_step,
                    state.max_steps,
                    logs["loss"],
                    rss and round(rss),
                )

    return StepLog()


def rows_read(steps: int, rows: int, settings: dict[str, Any]) -> int:
    """Examples the phase drew: steps x batch, at most its epochs over the rows when it ran by epochs."""
    drawn = steps * settings["batch_size"]
    return drawn if settings["max_steps"] > 0 else min(drawn, round(rows * settings["epochs"]))


def run_phase(
    model,
    phase: str,
    data: PhaseData,
    settings: dict[str, Any],
    seed: int,
    device: str,
    validation=None,
    select: bool = True,
) -> dict[str, Any]:
    """Loss, arguments, trainer, train (validating when `validation` is given and eval_steps > 0; with
    `select`, keeping the best weights and stopping early): the phase's record (steps, rows read,
    seconds, loss and val curves, parameter counts, its data's JSON)."""
    from archive_encoders.train.validation import validation_callback

    loss = make_loss(phase, model, settings)
    memory: dict[int, float | None] = {}
    callbacks = [_step_log(memory)]
    val = None
    if validation is not None and settings["eval_steps"]:
        val = validation_callback(
            model, validation.score, settings["eval_steps"], settings["patience"], phase, select
        )
        callbacks.append(val)
    with tempfile.TemporaryDirectory(prefix=f"train-{phase}-") as work_dir:
        trainer = _trainer(
            model, training_arguments(settings, phase, seed, device, work_dir), data, loss, callbacks
        )
        started = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - started
    trainable, total = count_params(loss)  # the loss holds the model (and TSDAE's decoder): all that trains
    steps, rows = output.global_step, len(data.dataset)
    read = rows_read(steps, rows, settings)
    train_s = seconds - (val.seconds if val else 0.0)
    curve = [
        {"step": e["step"], "loss": float(e["loss"]), "phase": phase, "rss_mb": _round(memory.get(e["step"]))}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    log.info(
        "%s: %d steps, %d of %d rows read in %.1f s (+ %.1f s validating), final loss %s",
        phase,
        steps,
        read,
        rows,
        train_s,
        seconds - train_s,
        curve[-1]["loss"] if curve else None,
    )
    return {
        "phase": phase,
        "steps": steps,
        "rows": rows,
        "rows_read": read,
        "epochs_read": round(read / rows, 4) if rows else 0.0,
        "batch_size": settings["batch_size"],
        "mini_batch_size": settings["mini_batch_size"],
        "learning_rate": settings["learning_rate"],
        "train_time_s": round(train_s, 3),
        "seconds_per_row": round(train_s / read, 6) if read else None,
        "trainable_params": trainable,
        "total_params": total,
        "validation": val.summary() if val else None,
        "loss_curve": curve,
        "val_curve": val.curve if val else [],
        "data": data.meta,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def train(
    model_spec: ModelSpec | dict[str, Any],
    method_params: dict[str, Any],
    inputs: dict[str, Any],
    out_dir: str | os.PathLike,
    seed: int | None = None,
    device: str = "auto",
    method_name: str | None = None,
    validation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `model_spec` with one method and write the sentence-transformers folder `out_dir`.

    method_params: the method's config entry with `type` (and `teacher_model` for a teacher's method);
    missing keys take the schema defaults. inputs: dataset paths by paths.DATASETS name (each needed only
    by some types), their metadata JSONs as `<name>_meta`, and `query_sets` (paths.QUERY_SETS) to validate
    on. validation: config `validation`. Returns the train_metrics dict (also in out_dir/train_metrics.json).
    """
    import torch
    from transformers import set_seed

    seed = default_seed(seed)
    spec = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_config(model_spec)
    params = with_defaults("methods.*", method_params)
    kind, method_name = method_kind(params, method_name)
    method = METHOD_TYPES[kind]
    device = pick_device(device)
    set_seed(seed)
    started = time.perf_counter()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    log.info("training %s with %s (%s) on %s", spec.name, method_name, kind, device)

    # 1. model
    model = load_model(spec, kind, params, device)
    _, base_total = count_params(model)

    # 2. data (prefixes are added here; the files hold plain text)
    phases = load_data(kind, params, inputs, spec, model)

    # 4. evaluator: the val query sets, one sample for every run (so val curves compare across runs)
    val_sets = validation_sets(phases, method, params, inputs, validation, spec)

    # 3. loss, 5. arguments, 6. trainer: one run per phase (tsdae or distill with then_mnrl has two)
    # (a first phase, TSDAE, prepares the encoder for the last: only the last keeps its best weights)
    last = list(phases)[-1] if phases else None
    results = [
        run_phase(
            model, phase, data, method.settings_for(phase, params), seed, device, val_sets, phase == last
        )
        for phase, data in phases.items()
    ]

    # 7. evaluate the export: merged LoRA weights must give the adapter model's embeddings
    model.eval()
    model, merge_check = merge_adapter(model, spec, kind, merge_probe(phases), device)

    # 8. save
    metrics = train_record(spec, method_name, kind, params, seed, device, results, base_total, val_sets)
    metrics["merge_check"] = merge_check
    metrics["pair_kinds"] = pair_kinds(phases)
    save_run(model, out_dir, metrics, spec, started, device)
    return metrics


def method_kind(params: dict[str, Any], method_name: str | None) -> tuple[str, str]:
    """(method type, run name) of a method entry; an unknown type is a config error."""
    kind = params.get("type") or method_name
    if kind not in METHOD_TYPES:
        raise ConfigError(
            f"method {method_name!r}: unknown type {kind!r}; expected one of {list(METHOD_TYPES)}"
        )
    return kind, method_name or kind


def validation_sets(phases, method, params, inputs, validation, spec):
    """The val query sets to validate on (the same sample for every run), or None when no phase
    validates or the run was given no query sets."""
    from archive_encoders.train.validation import ValidationSets

    validates = phases and inputs.get("query_sets")
    if not validates or not any(method.settings_for(p, params)["eval_steps"] for p in phases):
        return None
    return ValidationSets(inputs["query_sets"], with_defaults("validation", validation), spec, seed=0)


def merge_probe(phases: dict[str, PhaseData]) -> list[str]:
    """Texts encoded before and after a LoRA merge (anchors and positives of the MNRL phase)."""
    mnrl = phases.get("mnrl")
    if not mnrl:
        return []
    return mnrl.dataset["anchor"][: PROBE_TEXTS // 2] + mnrl.dataset["positive"][: PROBE_TEXTS // 2]


def save_run(model, out_dir, metrics: dict[str, Any], spec: ModelSpec, started: float, device: str) -> None:
    """The model folder with its train_metrics.json and model card, written atomically; the wall time and
    peak memory are filled into `metrics` here, at the end of the run."""
    import torch

    with atomic_dir(out_dir) as tmp:
        model.save(str(tmp), create_model_card=False, safe_serialization=True)
        metrics["exported_params"] = count_params(model)[1]
        metrics["wall_time_s"] = round(time.perf_counter() - started, 3)
        metrics["peak_ram_mb"] = round(peak_rss_mb(), 1)
        metrics["peak_gpu_mb"] = (
            round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None
        )
        write_text(Path(tmp) / "README.md", model_card(metrics, spec))
        write_json(Path(tmp) / "train_metrics.json", metrics)
    log.info("wrote %s: %s", out_dir, {k: metrics[k] for k in ("steps", "wall_time_s", "peak_ram_mb")})
