"""Fine-tune one candidate encoder with one method, and cache a distillation teacher's embeddings.

`train` follows the numbered shape of sentence-transformers' training examples (model, data, loss,
evaluator, arguments, trainer, evaluate, save) for every method type:

- baseline: the model unchanged (zero steps), so the matrix has a reference row;
- full: MultipleNegativesRankingLoss (MNRL) on the mined triplets, every weight trained;
- lora: peft LoRA adapters trained with MNRL, merged into the weights for export;
- qlora: a 4-bit NF4 base (bitsandbytes) + LoRA, the adapter merged onto the fp32 base for export;
- tsdae: DenoisingAutoEncoderLoss on our noisy pairs, optionally followed by the MNRL phase (then_mnrl);
- distill: MSE to the teacher's cached embeddings (PCA-projected when the teacher is wider), optionally on
  a student with fewer layers (student_layers).

Every setting comes from the arguments; the output folder appears atomically with train_metrics.json and a
model card recording what was done.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from .config import ConfigError, ModelSpec, with_defaults
from .corpus import scan_chunks
from .io import atomic_dir, write_json, write_parquet, write_text
from .methods import METHOD_TYPES
from .models import load_sentence_transformer
from .system import peak_rss_mb, pick_device
from .training_data import chunks_in_split
from .vectors import cosines, unit

log = logging.getLogger(__name__)

# What each training phase reads (a paths.DATASETS name); phases are listed per method type in methods.py.
PHASE_DATA = {"mnrl": "triplets", "tsdae": "tsdae_pairs", "distill": "teacher_embeddings"}
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


def load_model(spec: ModelSpec, kind: str, params: dict[str, Any], device: str):
    """The model to train: 4-bit for qlora, LoRA-wrapped for lora/qlora, fewer layers for distill."""
    if kind == "qlora":
        return add_lora(load_4bit(spec, device), params)
    model = load_sentence_transformer(spec, device=device)
    if kind == "lora":
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


def _read(path, columns: list[str]) -> pl.DataFrame:
    return pl.read_parquet(path, columns=columns)


def triplet_dataset(path, spec: ModelSpec):
    """anchor/positive/negative with the model's query prefix on anchors and passage prefix on the rest."""
    from datasets import Dataset

    frame = _read(path, ["anchor", "positive", "negative"])
    return Dataset.from_dict(
        {
            "anchor": [spec.query_prefix + t for t in frame["anchor"]],
            "positive": [spec.passage_prefix + t for t in frame["positive"]],
            "negative": [spec.passage_prefix + t for t in frame["negative"]],
        }
    )


def tsdae_dataset(path, spec: ModelSpec):
    """(noisy passage, original text): the encoder sees a prefixed passage, the decoder rebuilds the text."""
    from datasets import Dataset

    frame = _read(path, ["noisy", "text"])
    return Dataset.from_dict(
        {"noisy": [spec.passage_prefix + t for t in frame["noisy"]], "text": frame["text"]}
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


def distill_dataset(path, spec: ModelSpec, model):
    """(passage, teacher embedding), the teacher's embedding projected to the student's width if needed."""
    from datasets import Dataset

    frame = _read(path, ["text", "embedding"])
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
    return Dataset.from_dict(
        {
            "text": [spec.passage_prefix + t for t in frame["text"]],
            "label": labels.astype(np.float32).tolist(),
        }
    )


def _phase_dataset(phase: str, path: str, spec: ModelSpec, model):
    if phase == "mnrl":
        return triplet_dataset(path, spec)
    if phase == "tsdae":
        return tsdae_dataset(path, spec)
    if phase == "distill":
        return distill_dataset(path, spec, model)
    raise ValueError(f"unknown training phase {phase!r}")


def load_data(
    kind: str, params: dict[str, Any], inputs: dict[str, Any], spec: ModelSpec, model
) -> dict[str, Any]:
    """Training phases in order (methods.METHOD_TYPES), name -> dataset, from the `inputs` paths."""
    datasets = {}
    for phase in METHOD_TYPES[kind].phases_for(params):
        name = PHASE_DATA[phase]
        if not inputs.get(name):
            raise ValueError(f"method type {kind!r} needs the {name!r} input")
        datasets[phase] = _phase_dataset(phase, str(inputs[name]), spec, model)
    return datasets


# --- 3. loss ---


def make_loss(phase: str, model):
    from sentence_transformers.sentence_transformer import losses

    if phase == "mnrl":
        return losses.MultipleNegativesRankingLoss(model)
    if phase == "tsdae":
        # the decoder is built from the encoder's own folder and shares its weights (tie_encoder_decoder)
        return losses.DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
    if phase == "distill":
        return losses.MSELoss(model)
    raise ValueError(f"unknown training phase {phase!r}")


# --- 5. arguments ---


def training_arguments(params: dict[str, Any], phase: str, seed: int, device: str, work_dir: str):
    import torch
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=work_dir,
        num_train_epochs=params["epochs"],
        max_steps=params["max_steps"],
        per_device_train_batch_size=params["batch_size"],
        learning_rate=params["learning_rate"],
        # transformers 5 takes a ratio as a float below 1 in warmup_steps (warmup_ratio is gone)
        warmup_steps=min(float(params["warmup_ratio"]), 0.999),
        weight_decay=params["weight_decay"],
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        bf16=device == "cuda" and torch.cuda.is_bf16_supported(),
        # in-batch negatives: a duplicate text in a batch would be a false negative
        batch_sampler=BatchSamplers.NO_DUPLICATES if phase == "mnrl" else BatchSamplers.BATCH_SAMPLER,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        push_to_hub=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _log_callback():
    from transformers import TrainerCallback

    class LogLoss(TrainerCallback):
        """Losses to the job log (stdout is not the log under Snakemake)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                log.info("step %d/%d loss %.4f", state.global_step, state.max_steps, logs["loss"])

    return LogLoss()


def run_phase(model, phase: str, dataset, params: dict[str, Any], seed: int, device: str) -> dict[str, Any]:
    """Loss, arguments, trainer, train: returns steps, samples, seconds, loss curve, parameter counts."""
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from transformers.trainer_callback import PrinterCallback

    loss = make_loss(phase, model)
    with tempfile.TemporaryDirectory(prefix=f"train-{phase}-") as work_dir:
        args = training_arguments(params, phase, seed, device, work_dir)
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[_log_callback()]
        )
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - started
    trainable, total = count_params(loss)  # the loss holds the model (and TSDAE's decoder): all that trains
    steps = output.global_step
    samples = (
        steps * params["batch_size"] if params["max_steps"] > 0 else round(len(dataset) * params["epochs"])
    )
    curve = [
        {"step": entry["step"], "loss": float(entry["loss"]), "phase": phase}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    log.info(
        "%s: %d steps, %d samples in %.1f s, final loss %s",
        phase,
        steps,
        samples,
        seconds,
        curve[-1]["loss"] if curve else None,
    )
    return {
        "phase": phase,
        "steps": steps,
        "samples": min(samples, steps * params["batch_size"]),
        "train_time_s": seconds,
        "trainable_params": trainable,
        "total_params": total,
        "rows": len(dataset),
        "loss_curve": curve,
    }


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


def pair_kinds(inputs: dict[str, Any]) -> dict[str, int]:
    """Rows per pseudo-query kind in the triplets a method trained on (the report marks the query sets
    made by the same generators as in-distribution for it)."""
    kinds = pl.read_parquet(inputs["triplets"], columns=["kind"])["kind"].value_counts()
    return {kind: int(n) for kind, n in kinds.rows()}


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


def train_record(
    spec: ModelSpec,
    method: str,
    kind: str,
    params: dict,
    seed: int,
    device: str,
    results: list[dict],
    total: int,
) -> dict[str, Any]:
    """train_metrics.json without the figures known only at the end (wall time, peaks, exported size)."""
    hyper = {k: params[k] for k in METHOD_TYPES[kind].keys if k in params}
    if kind == "distill":
        hyper["teacher_path"] = params.get("teacher_model", {}).get("path")
    hyper["seed"] = seed
    curve, offset = [], 0
    for r in results:  # one step axis across phases (tsdae then MNRL)
        curve.extend({**point, "step": point["step"] + offset} for point in r["loss_curve"])
        offset += r["steps"]
    train_time = sum(r["train_time_s"] for r in results)
    samples = sum(r["samples"] for r in results)
    return {
        "model": spec.name,
        "method": method,
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
        "loss_curve": curve,
        "phases": [{k: v for k, v in r.items() if k != "loss_curve"} for r in results],
        "hyperparameters": hyper,
        "data": {PHASE_DATA[r["phase"]]: r["rows"] for r in results},
    }


def train(
    model_spec: ModelSpec | dict[str, Any],
    method_params: dict[str, Any],
    inputs: dict[str, Any],
    out_dir: str | os.PathLike,
    seed: int = 13,
    device: str = "auto",
    method_name: str | None = None,
) -> dict[str, Any]:
    """Train `model_spec` with one method and write the sentence-transformers folder `out_dir`.

    method_params: the method's config entry with `type` (and `teacher_model` for distill); missing keys take
    the schema defaults. inputs: paths `triplets`, `tsdae`, `teacher` (each needed only by some types).
    Returns the train_metrics dict (also written to out_dir/train_metrics.json).
    """
    import torch
    from transformers import set_seed

    spec = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_config(model_spec)
    params = with_defaults("methods.*", method_params)
    kind = params.get("type") or method_name
    if kind not in METHOD_TYPES:
        raise ConfigError(
            f"method {method_name!r}: unknown type {kind!r}; expected one of {list(METHOD_TYPES)}"
        )
    method_name = method_name or kind
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
    probe = mnrl["anchor"][: PROBE_TEXTS // 2] + mnrl["positive"][: PROBE_TEXTS // 2] if mnrl else []

    # 3. loss, 5. arguments, 6. trainer: one run per phase (tsdae with then_mnrl has two)
    # 4. evaluator: none here, the evaluate stage scores every model on the held-out retrieval set
    results = [run_phase(model, phase, dataset, params, seed, device) for phase, dataset in phases.items()]

    # 7. evaluate the export: merged LoRA weights must give the adapter model's embeddings
    model.eval()
    model, merge_check = merge_adapter(model, spec, kind, probe, device)

    # 8. save
    metrics = train_record(spec, method_name, kind, params, seed, device, results, base_total)
    metrics["merge_check"] = merge_check
    metrics["pair_kinds"] = pair_kinds(inputs) if "mnrl" in phases else {}
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


def teacher_embeddings(
    chunks: str | os.PathLike,
    splits: str | os.PathLike,
    embeddings_out: str | os.PathLike,
    teacher: ModelSpec | dict[str, Any],
    device: str = "auto",
    max_pairs: int | None = None,
    seed: int = 13,
    batch_size: int = 32,
) -> None:
    """chunk_id, text, embedding (list[float32]) of train-split chunks (up to max_pairs, seeded)."""
    spec = teacher if isinstance(teacher, ModelSpec) else ModelSpec.from_config(teacher)
    train_chunks = chunks_in_split(scan_chunks(chunks).collect(), pl.read_parquet(splits), ["train"])
    if max_pairs and train_chunks.height > max_pairs:
        rows = np.sort(np.random.default_rng(seed).choice(train_chunks.height, size=max_pairs, replace=False))
        train_chunks = train_chunks[rows.tolist()]
    model = load_sentence_transformer(spec, device=pick_device(device))
    texts = train_chunks["text"].to_list()
    embeddings = model.encode(
        [spec.passage_prefix + t for t in texts],
        batch_size=batch_size,
        convert_to_numpy=True,
        show_progress_bar=False,
    ).astype(np.float32)
    frame = pl.DataFrame(
        {"chunk_id": train_chunks["chunk_id"], "text": texts, "embedding": embeddings.tolist()},
        schema={"chunk_id": pl.Utf8, "text": pl.Utf8, "embedding": pl.List(pl.Float32)},
    )
    write_parquet(frame, embeddings_out)
    log.info("teacher %s: %d embeddings of %d dims", spec.name, frame.height, embeddings.shape[1])
