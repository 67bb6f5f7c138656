"""What a training run records: train_metrics.json (its fields in docs/ARCHITECTURE.md), its cost on the
whole corpus, and the model card."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import yaml

from archive_encoders.config import ModelSpec
from archive_encoders.methods import METHOD_TYPES, PHASES
from archive_encoders.system import hardware

if TYPE_CHECKING:
    from archive_encoders.train.phases import PhaseData

log = logging.getLogger(__name__)


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
