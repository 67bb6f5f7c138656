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
  its own prefixes (PCA-projected when the teacher is wider), optionally into fewer layers.

A phase trains `batch_size` examples per optimizer step with at most `mini_batch_size` texts encoded
with gradients at once (GradCache for MNRL, gradient accumulation for the others), so peak memory is
set by the mini-batch. With the val query sets among the inputs, every phase validates as it goes and
ends on its best weights (validation.py). Every setting comes from the arguments; the output folder
appears atomically with train_metrics.json (fields in docs/ARCHITECTURE.md) and a model card.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from .config import ConfigError, ModelSpec, pair_problem, with_defaults
from .io import atomic_dir, read_json, write_json, write_text
from .methods import METHOD_TYPES, PHASES
from .models import ModelInfo, load_sentence_transformer
from .system import current_rss_mb, hardware, peak_rss_mb, pick_device, release_freed_memory
from .vectors import cosines, unit

log = logging.getLogger(__name__)

PROBE_TEXTS = 16  # texts encoded before and after a LoRA merge to check the export matches what was trained


# --- 1. model ---


def _linear4bit_types() -> tuple[type, ...]:
    import bitsandbytes as bnb

    return (bnb.nn.Linear4bit,)


def load_4bit(spec: ModelSpec, device: str):
    """The model with its linear layers in 4-bit NF4 (bitsandbytes); fp32 compute on CPU, bf16 on a GPU."""
    import torch
    from transformers import BitsAndBytesConfig

    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )
    kwargs: dict[str, Any] = {"quantization_config": quant}
    if device == "cuda":
        kwargs["device_map"] = {"": 0}  # quantize straight onto the GPU
    model = load_sentence_transformer(spec, device=device, model_kwargs=kwargs)
    # bitsandbytes repacks 4-bit weights for avx512_bf16 CPUs at the first inference, after which the next
    # backward fails ("a view of a leaf Variable ... in-place"); keeping the plain layout avoids it.
    for module in model.modules():
        if isinstance(module, _linear4bit_types()):
            module.support_avx512bf16_for_cpu = False
    return model


def add_lora(model, params: dict[str, Any]):
    """Wrap the transformer in peft LoRA adapters (base frozen); returns the same SentenceTransformer."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=params["lora_r"],
        lora_alpha=params["lora_alpha"],
        lora_dropout=params["lora_dropout"],
        target_modules=params["target_modules"],
        bias="none",
    )
    # `auto_model` is a read-only property in sentence-transformers 6: the module attribute is `model`
    model[0].model = get_peft_model(model[0].model, config)
    return model


def _layer_list(hf_model):
    """(parent module, attribute name, ModuleList) of the transformer blocks."""
    import torch.nn as nn

    n_layers = getattr(hf_model.config, "num_hidden_layers", None)
    for module in hf_model.modules():
        for attr, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n_layers:
                return module, attr, child
    raise ValueError(
        f"student_layers: cannot find the {n_layers} transformer layers of {type(hf_model).__name__}"
    )


def keep_layers(model, n: int) -> list[int]:
    """Keep `n` evenly spaced transformer layers (first and last included); returns the kept indices."""
    import torch.nn as nn

    hf_model = model[0].model
    parent, attr, layers = _layer_list(hf_model)
    total = len(layers)
    if n >= total:
        return list(range(total))
    keep = sorted({int(i) for i in np.linspace(0, total - 1, n).round()})
    setattr(parent, attr, nn.ModuleList([layers[i] for i in keep]))
    hf_model.config.num_hidden_layers = len(keep)
    if isinstance(getattr(hf_model.config, "layer_types", None), list):
        hf_model.config.layer_types = [hf_model.config.layer_types[i] for i in keep]
    log.info("student: kept layers %s of %d", keep, total)
    return keep


def check_pair(model, spec: ModelSpec, kind: str, params: dict[str, Any]) -> None:
    """The config check's model x method rules again, on the loaded model (a hub model the config check
    could not read before it was downloaded)."""
    config = model[0].model.config
    info = ModelInfo(config.model_type, config.num_hidden_layers, model.get_embedding_dimension())
    problem = pair_problem(spec, info, METHOD_TYPES[kind], params, None)
    if problem:
        raise ConfigError(f"method {params.get('base_method') or kind!r}: {problem}")


def load_model(spec: ModelSpec, kind: str, params: dict[str, Any], device: str):
    """The model to train, once the model x method rules hold for it: 4-bit for qlora, LoRA-wrapped for
    lora/qlora, fewer layers for distill."""
    model = load_4bit(spec, device) if kind == "qlora" else load_sentence_transformer(spec, device=device)
    check_pair(model, spec, kind, params)
    if METHOD_TYPES[kind].trains == "adapters":
        add_lora(model, params)
    if kind == "distill" and params.get("student_layers"):
        keep_layers(model, params["student_layers"])
    return model


def count_params(module) -> tuple[int, int]:
    """(trainable, total) parameters; shared (tied) tensors once, 4-bit weights at their real size."""
    seen, trainable, total = set(), 0, 0
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        quant_state = getattr(p, "quant_state", None)
        n = int(np.prod(quant_state.shape)) if quant_state is not None else p.numel()
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


# --- 2. data ---


@dataclass
class PhaseData:
    """A phase's training set, where its examples come from (for MNRL's batches), its dataset JSON."""

    dataset: Any
    sources: list | None = None
    meta: dict[str, Any] | None = None
    kinds: list[str] | None = None  # the pseudo-query kind of each query it trains on


def _read(path, columns: list[str]) -> pl.DataFrame:
    return pl.read_parquet(path, columns=columns)


def triplet_dataset(path, spec: ModelSpec) -> PhaseData:
    """anchor/positive/negative with the model's query prefix on anchors and passage prefix on the rest."""
    from datasets import Dataset

    from .batching import Source

    frame = _read(path, ["anchor", "positive", "negative", "kind", "doc_id", "cluster_id", "chunk_index"])
    dataset = Dataset.from_dict(
        {
            "anchor": [spec.query_prefix + t for t in frame["anchor"]],
            "positive": [spec.passage_prefix + t for t in frame["positive"]],
            "negative": [spec.passage_prefix + t for t in frame["negative"]],
        }
    )
    sources = [Source(*row) for row in frame.select("cluster_id", "doc_id", "chunk_index").rows()]
    return PhaseData(dataset, sources, kinds=frame["kind"].to_list())


def tsdae_dataset(path, spec: ModelSpec) -> PhaseData:
    """(noisy passage, original text): the encoder sees a prefixed passage, the decoder rebuilds the text."""
    from datasets import Dataset

    frame = _read(path, ["noisy", "text"])
    return PhaseData(
        Dataset.from_dict({"noisy": [spec.passage_prefix + t for t in frame["noisy"]], "text": frame["text"]})
    )


def margin_dataset(path, spec: ModelSpec) -> PhaseData:
    """GPL: (query, positive, negative) with the student's prefixes; label = the teacher's margin
    score(query, positive) - score(query, negative) (MarginMSELoss's target)."""
    from datasets import Dataset

    frame = _read(path, ["anchor", "positive", "negative", "kind", "margin"])
    return PhaseData(
        Dataset.from_dict(
            {
                "anchor": [spec.query_prefix + t for t in frame["anchor"]],
                "positive": [spec.passage_prefix + t for t in frame["positive"]],
                "negative": [spec.passage_prefix + t for t in frame["negative"]],
                "label": frame["margin"].cast(pl.Float32).to_list(),
            }
        ),
        kinds=frame["kind"].to_list(),
    )


def project_teacher(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Teacher embeddings onto their top `dim` principal directions (sentence-transformers' distillation
    example: PCA fitted on teacher embeddings, applied as a bias-free linear map)."""
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if vt.shape[0] < dim:
        raise ValueError(f"distill: {len(embeddings)} teacher embeddings are too few for a {dim}-d PCA")
    return embeddings @ vt[:dim].T


def _normalizes(model) -> bool:
    return type(model[len(model) - 1]).__name__ == "Normalize"


def distill_dataset(path, spec: ModelSpec, model) -> PhaseData:
    """(text, teacher embedding) for passages and pseudo-queries: each text gets the STUDENT's prefix of
    its role (the teacher embedded it with its own), the targets projected to the student's width."""
    from datasets import Dataset

    frame = _read(path, ["text", "role", "kind", "embedding"])
    labels = np.asarray(frame["embedding"].to_list(), dtype=np.float32)
    student_dim = model.get_embedding_dimension()
    if labels.shape[1] < student_dim:
        raise ValueError(
            f"distill: the student ({student_dim}-d) is wider than the teacher ({labels.shape[1]}-d); "
            "PCA can only narrow the teacher's embeddings"
        )
    if labels.shape[1] > student_dim:
        labels = project_teacher(labels, student_dim)
        if _normalizes(model):  # a unit-length student cannot match non-unit targets
            labels = unit(labels)
        log.info("teacher embeddings projected by PCA to %d dims", student_dim)
    prefix = {"query": spec.query_prefix, "passage": spec.passage_prefix}
    return PhaseData(
        Dataset.from_dict(
            {
                "text": [prefix[role] + t for role, t in frame.select("role", "text").rows()],
                "label": labels.astype(np.float32).tolist(),
            }
        ),
        kinds=frame["kind"].drop_nulls().to_list(),
    )


def _phase_data(phase: str, path: str, spec: ModelSpec, model) -> PhaseData:
    if phase == "mnrl":
        return triplet_dataset(path, spec)
    if phase == "tsdae":
        return tsdae_dataset(path, spec)
    if phase == "margin_mse":
        return margin_dataset(path, spec)
    if phase == "distill":
        return distill_dataset(path, spec, model)
    raise ValueError(f"unknown training phase {phase!r}")


def load_data(
    kind: str, params: dict[str, Any], inputs: dict[str, Any], spec: ModelSpec, model
) -> dict[str, PhaseData]:
    """Training phases in order (methods.METHOD_TYPES), name -> data, from the `inputs` paths (a dataset
    `<name>` with its metadata JSON as `<name>_meta` when given)."""
    data = {}
    for phase in METHOD_TYPES[kind].phases_for(params):
        name = PHASES[phase]
        if not inputs.get(name):
            raise ValueError(f"method type {kind!r} needs the {name!r} input")
        data[phase] = _phase_data(phase, str(inputs[name]), spec, model)
        if inputs.get(f"{name}_meta"):
            data[phase].meta = read_json(inputs[f"{name}_meta"])
    return data


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

    from .batching import SourceBatchSampler

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
    from .validation import validation_callback

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


# --- 7. evaluate: the exported weights must give the embeddings of the model that was trained ---


def merge_lora(model, spec: ModelSpec, kind: str, device: str):
    """Fold the LoRA adapter into plain weights: in place for lora, onto a fresh fp32 base for qlora."""
    from peft import PeftModel

    if kind == "lora":
        model[0].model = model[0].model.merge_and_unload()
        return model
    with tempfile.TemporaryDirectory(prefix="qlora-adapter-") as adapter_dir:
        model[0].model.save_pretrained(adapter_dir, safe_serialization=True)
        base = load_sentence_transformer(spec, device=device)
        base[0].model = PeftModel.from_pretrained(base[0].model, adapter_dir).merge_and_unload()
    return base


def merge_adapter(model, spec: ModelSpec, kind: str, probe: list[str], device: str):
    """(exportable model, merge check): LoRA merged, with the cosine of merged vs adapter embeddings."""
    if METHOD_TYPES[kind].trains != "adapters":
        return model, None
    before = model.encode(probe, convert_to_numpy=True)
    model = merge_lora(model, spec, kind, device)
    after = model.encode(probe, convert_to_numpy=True)
    cos = cosines(before, after)
    check = {"texts": len(probe), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
    log.info("merged %s vs adapter model: %s", kind, check)
    return model, check


# --- 8. save ---


def pair_kinds(phases: dict[str, PhaseData]) -> dict[str, int]:
    """Rows per pseudo-query kind a method trained on, over its phases (the report marks the query sets
    made by the same generators as in-distribution for it)."""
    counts: Counter[str] = Counter()
    for data in phases.values():
        counts.update(data.kinds or [])
    return dict(sorted(counts.items()))


def model_card(metrics: dict[str, Any], spec: ModelSpec) -> str:
    """README.md: what the folder is, where it came from, how it was trained and on how much data."""
    front = {
        "base_model": spec.path,
        "library_name": "sentence-transformers",
        "pipeline_tag": "sentence-similarity",
        "tags": ["sentence-transformers", "archive-encoders", metrics["type"]],
    }
    data = "\n".join(f"| {k} | {v} |" for k, v in metrics["data"].items()) or "| (none) | 0 |"
    return f"""---
{yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()}
---

# {metrics["model"]} · {metrics["method"]}

Sentence encoder produced by the archive-encoders workflow for search over archive.org texts.

| | |
|---|---|
| Base model | `{spec.path}` |
| Method | `{metrics["method"]}` (type `{metrics["type"]}`) |
| Pooling | {spec.pooling} |
| Max sequence length | {spec.max_seq_length} |
| Query prefix | `{spec.query_prefix!r}` |
| Passage prefix | `{spec.passage_prefix!r}` |
| Device | {metrics["device"]} |
| Steps | {metrics["steps"]} |
| Trainable / total parameters | {metrics["trainable_params"]:,} / {metrics["total_params"]:,} |
| Wall time | {metrics["wall_time_s"]:.1f} s |

Add the query prefix to queries and the passage prefix to passages when encoding.

## Hyperparameters

```json
{json.dumps(metrics["hyperparameters"], indent=2, sort_keys=True, ensure_ascii=False)}
```

## Training data (rows)

| dataset | rows |
|---|---|
{data}

Training cost and the loss curve are in `train_metrics.json`.
"""


def _on_one_axis(results: list[dict], key: str) -> list[dict]:
    """Curve points of all phases on one step axis (tsdae's steps, then the next phase's)."""
    points, offset = [], 0
    for r in results:
        points.extend({**p, "step": p["step"] + offset} for p in r[key])
        offset += r["steps"]
    return points


def cost_record(results: list[dict], device: str) -> dict[str, Any]:
    """What this run cost, and what it would cost on the whole corpus on the same hardware class.

    Per phase: the dataset it read was made from `source_chunks` train chunks, `rows_available` rows
    before the max_pairs cap (the rate the recipe makes rows at), and took `build_s` (plus its upstream
    datasets', e.g. the mining behind the teacher's scores) to build; training read `epochs_read` epochs at
    `seconds_per_row`. On the full corpus (`corpus_chunks`) the recipe makes rows_available / source_chunks
    rows per chunk, each costing its share of the build time and epochs_read x seconds_per_row to train.
    """
    full_s, full_rows, data_s, data_hw, corpus_chunks = 0.0, 0, 0.0, [], None
    per_chunk_rows, per_chunk_prep = 0.0, 0.0
    for r in results:
        meta = r["data"] or {}
        build = meta.get("build_s", 0.0) + sum(
            u.get("build_s", 0.0) for u in meta.get("upstream", {}).values()
        )
        data_s += build
        if meta.get("hardware"):
            data_hw.append({"dataset": meta["dataset"], **meta["hardware"]})
        if not (meta.get("source_chunks") and r["rows"] and r["seconds_per_row"] is not None):
            full_s = None
            continue
        corpus_chunks = meta["corpus_chunks"]
        rate = meta["rows_available"] / meta["source_chunks"]  # rows the recipe makes per chunk
        rows = rate * corpus_chunks
        full_rows += round(rows)
        per_chunk_rows += rate * r["epochs_read"]
        per_chunk_prep += rate * build / r["rows"]
        if full_s is not None:
            full_s += rows * (r["epochs_read"] * r["seconds_per_row"] + build / r["rows"])
    if not results:
        full_s = 0.0
    return {
        "hardware": hardware(device),
        "train_s": round(sum(r["train_time_s"] for r in results), 3),
        "validation_s": round(sum((r["validation"] or {}).get("validation_s", 0.0) for r in results), 3),
        "data_s": round(data_s, 3),
        "data_hardware": data_hw,
        "corpus_chunks": corpus_chunks,
        "full_corpus_rows": full_rows,
        # the same estimate in the report's terms: rows read per corpus chunk at the run's samples/s,
        # plus the data preparation per chunk
        "samples_per_corpus_chunk": round(per_chunk_rows, 4) if full_s is not None else None,
        "data_prep_s_per_chunk": round(per_chunk_prep, 6) if full_s is not None else None,
        "full_corpus_hours": None if full_s is None else float(f"{full_s / 3600:.4g}"),
    }


def validation_record(results: list[dict], validation) -> dict[str, Any] | None:
    """Which val sets, how large, and where the exported weights come from (the last phase's best)."""
    if validation is None:
        return None
    offset = sum(r["steps"] for r in results[:-1])
    last = next((r["validation"] for r in reversed(results) if r["validation"]), None)
    return {
        "metric": "ndcg@10 (mean over sets)",
        "sets": validation.sizes,
        "corpus": validation.passages,
        "texts_encoded": len(validation.texts),  # passages, and the sets' own versions of some
        "best_step": last["best_step"] + offset if last and last["best_step"] is not None else None,
        "best_score": last["best_score"] if last else None,
        "stopped_early": any((r["validation"] or {}).get("stopped_early") for r in results),
    }


def train_record(
    spec: ModelSpec,
    method: str,
    kind: str,
    params: dict,
    seed: int,
    device: str,
    results: list[dict],
    total: int,
    validation=None,
) -> dict[str, Any]:
    """train_metrics.json without the figures known only at the end (wall time, peaks, exported size)."""
    hyper = {k: params[k] for k in METHOD_TYPES[kind].keys if k in params}
    if METHOD_TYPES[kind].teacher:
        hyper["teacher_path"] = params.get("teacher_model", {}).get("path")
    hyper["seed"] = seed
    train_time = sum(r["train_time_s"] for r in results)
    samples = sum(r["rows_read"] for r in results)
    cost = cost_record(results, device)
    return {
        "model": spec.name,
        "method": method,
        "base_method": params.get("base_method") or method,
        "seed": seed,
        "type": kind,
        "base_model": spec.path,
        "device": device,
        "samples": samples,
        "steps": sum(r["steps"] for r in results),
        "train_time_s": round(train_time, 3),
        "samples_per_s": round(samples / train_time, 3) if train_time > 0 else None,
        # the largest phase: TSDAE's decoder trains with the encoder, then the MNRL phase trains the encoder
        "trainable_params": max([r["trainable_params"] for r in results], default=0),
        "total_params": max([r["total_params"] for r in results], default=total),
        "loss_curve": _on_one_axis(results, "loss_curve"),
        "val_curve": _on_one_axis(results, "val_curve"),
        "validation": validation_record(results, validation),
        "phases": [{k: v for k, v in r.items() if k not in ("loss_curve", "val_curve")} for r in results],
        "hyperparameters": hyper,
        "data": {PHASES[r["phase"]]: r["rows"] for r in results},
        "cost": cost,
        "samples_per_corpus_chunk": cost["samples_per_corpus_chunk"],
        "data_prep_s_per_chunk": cost["data_prep_s_per_chunk"],
    }


def train(
    model_spec: ModelSpec | dict[str, Any],
    method_params: dict[str, Any],
    inputs: dict[str, Any],
    out_dir: str | os.PathLike,
    seed: int = 13,
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

    from .validation import ValidationSets

    spec = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_config(model_spec)
    params = with_defaults("methods.*", method_params)
    kind = params.get("type") or method_name
    if kind not in METHOD_TYPES:
        raise ConfigError(
            f"method {method_name!r}: unknown type {kind!r}; expected one of {list(METHOD_TYPES)}"
        )
    method_name = method_name or kind
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
    mnrl = phases.get("mnrl")
    probe = (
        (mnrl.dataset["anchor"][: PROBE_TEXTS // 2] + mnrl.dataset["positive"][: PROBE_TEXTS // 2])
        if mnrl
        else []
    )

    # 4. evaluator: the val query sets, one sample for every run (so val curves compare across runs)
    validates = (
        phases
        and inputs.get("query_sets")
        and any(method.settings_for(p, params)["eval_steps"] for p in phases)
    )
    val_sets = (
        ValidationSets(inputs["query_sets"], with_defaults("validation", validation), spec, seed=0)
        if validates
        else None
    )

    # 3. loss, 5. arguments, 6. trainer: one run per phase (tsdae with then_mnrl has two)
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
    model, merge_check = merge_adapter(model, spec, kind, probe, device)

    # 8. save
    metrics = train_record(spec, method_name, kind, params, seed, device, results, base_total, val_sets)
    metrics["merge_check"] = merge_check
    metrics["pair_kinds"] = pair_kinds(phases)
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
    return metrics
