"""The report's tables, built from the stage outputs: summary, variants, cost, probe.

Every table is a polars frame (written to CSV/Parquet as is); the markdown views pick columns from it
through one column spec each (render.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.evaluate.compare import DENSE, LEXICAL
from archive_encoders.evaluate.metrics import HEADLINE
from archive_encoders.report.inputs import ReportInputs, training_kinds
from archive_encoders.variants import REFERENCE, order

LATENCY = "query_p50_ms"  # batch-1 median latency of one query: what a search request waits for


def _latency_columns(record: Mapping[str, Any] | None) -> dict[str, Any]:
    record = record or {}
    query = record.get("batch1_query_ms") or {}
    passage = record.get("batch1_passage_ms") or {}
    return {
        "query_p50_ms": query.get("p50"),
        "query_p95_ms": query.get("p95"),
        "passage_p50_ms": passage.get("p50"),
        "throughput_texts_per_s": record.get("throughput_texts_per_s"),
        "size_mb": record.get("size_mb"),
        "peak_rss_mb": record.get("peak_rss_mb"),
        "cpu": record.get("cpu"),
        "cpu_flags": " ".join(record.get("cpu_flags") or []),
        "threads": record.get("threads"),
    }


def row_facts(inputs: ReportInputs, min_mean_cosine: float) -> pl.DataFrame:
    """Per (model, method, variant, retriever): latency, size, fidelity, STS, in-distribution kinds."""
    kinds = training_kinds(inputs.train)
    lexical_latency = inputs.lexical.get("latency", {})
    facts = []
    keys = inputs.rows.select("model", "method", "variant", "retriever").unique(maintain_order=True)
    for model, method, variant, retriever in keys.rows():
        if retriever == LEXICAL:
            record = _latency_columns(lexical_latency)
        else:
            record = _latency_columns(inputs.latency.get((model, method, variant)))
            if retriever != DENSE:  # a hybrid waits for both retrievers (run one after the other)
                bm25 = (lexical_latency.get("batch1_query_ms") or {}).get("p50")
                dense = record["query_p50_ms"]
                record["query_p50_ms"] = dense + bm25 if dense is not None and bm25 is not None else None
                record["query_p95_ms"] = None
        fid = inputs.fidelity.get((model, method), {}).get(variant, {})
        mean_cos = fid.get("mean_cosine")
        record |= {
            "model": model,
            "method": method,
            "variant": variant,
            "retriever": retriever,
            "fidelity_mean_cosine": mean_cos,
            "fidelity_min_cosine": fid.get("min_cosine"),
            "low_fidelity": bool(
                variant != REFERENCE
                and retriever != LEXICAL
                and ((mean_cos is not None and mean_cos < min_mean_cosine) or fid.get("passed") is False)
            ),
            "trained_on": ", ".join(sorted(kinds.get((model, method), set()))),
        }
        for name, sts in (inputs.evaluations.get((model, method, variant)) or {}).get("sts", {}).items():
            record[f"sts_{name}"] = sts.get("spearman") if retriever == DENSE else None
        facts.append(record)
    return pl.DataFrame(facts, infer_schema_length=None)


def summary_table(inputs: ReportInputs, min_mean_cosine: float) -> pl.DataFrame:
    """One row per retriever x test set: quality with intervals and paired differences, latency, size,
    fidelity, STS, and whether the set shares a generator with the row's training data."""
    joined = inputs.rows.join(
        row_facts(inputs, min_mean_cosine), on=["model", "method", "variant", "retriever"], how="left"
    )
    generators = {name: meta.get("generator") for name, meta in inputs.set_info.items()}
    in_distribution = [
        generators.get(name) is not None and generators[name] in (trained or "").split(", ")
        for name, trained in zip(joined["query_set"], joined["trained_on"], strict=True)
    ]
    joined = joined.with_columns(in_distribution=pl.Series(in_distribution, dtype=pl.Boolean))
    parts = []
    for _, group in joined.group_by("query_set", maintain_order=True):
        front = pareto_front(group[LATENCY].to_list(), group[HEADLINE].to_list())
        parts.append(group.with_columns(pareto_optimal=pl.Series(front)))
    return _sorted(pl.concat(parts, how="diagonal_relaxed"))


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    retriever_rank = {DENSE: 0, LEXICAL: 1}
    return (
        frame.with_columns(
            _v=pl.col("variant").map_elements(order, return_dtype=pl.Int64),
            _r=pl.col("retriever").replace_strict(retriever_rank, default=2, return_dtype=pl.Int64),
        )
        .sort("query_set", "model", "method", "_r", "retriever", "_v")
        .drop("_v", "_r")
    )


def pareto_front(cost: Sequence[float | None], value: Sequence[float | None]) -> np.ndarray:
    """True where no other point is at least as fast and as good, and strictly better in one of the two.

    Lower cost (latency) and higher value (quality) are better; points missing either are never optimal.
    Identical points are all optimal: neither dominates the other.
    """
    c = np.array([np.nan if x is None else x for x in cost], dtype=np.float64)
    v = np.array([np.nan if x is None else x for x in value], dtype=np.float64)
    valid = ~(np.isnan(c) | np.isnan(v))
    optimal = valid.copy()
    for i in np.flatnonzero(valid):
        others = valid & (c <= c[i]) & (v >= v[i]) & ((c < c[i]) | (v > v[i]))
        optimal[i] = not others.any()
    return optimal


def variants_table(summary: pl.DataFrame) -> pl.DataFrame:
    """Per model x method x dense variant: what it costs and keeps against the reference (PyTorch) and
    against ONNX FP32: size, batch-1 query and passage speedups, throughput, fidelity, NDCG@10 kept."""
    dense = summary.filter(pl.col("retriever") == DENSE)
    out = []
    for (model, method), group in dense.group_by(["model", "method"], maintain_order=True):
        per_variant = {v: g for (v,), g in group.group_by(["variant"], maintain_order=True)}
        reference, fp32 = per_variant.get(REFERENCE), per_variant.get("onnx-fp32")
        for variant, g in per_variant.items():
            first = g.row(0, named=True)
            record = {"model": model, "method": method, "variant": variant}
            for col in ("size_mb", "query_p50_ms", "passage_p50_ms", "throughput_texts_per_s"):
                record[col] = first[col]
            for name, ref in (("torch", reference), ("onnx_fp32", fp32)):
                r = ref.row(0, named=True) if ref is not None else {}
                record[f"size_ratio_vs_{name}"] = _ratio(first["size_mb"], r.get("size_mb"))
                record[f"speedup_query_vs_{name}"] = _ratio(r.get("query_p50_ms"), first["query_p50_ms"])
                record[f"speedup_passage_vs_{name}"] = _ratio(
                    r.get("passage_p50_ms"), first["passage_p50_ms"]
                )
                record[f"speedup_throughput_vs_{name}"] = _ratio(
                    first["throughput_texts_per_s"], r.get("throughput_texts_per_s")
                )
            record |= {
                "mean_cosine": first["fidelity_mean_cosine"],
                "min_cosine": first["fidelity_min_cosine"],
                "low_fidelity": first["low_fidelity"],
            }
            if reference is not None:
                kept = dict(zip(reference["query_set"], reference[HEADLINE], strict=True))
                for set_name, value in zip(g["query_set"], g[HEADLINE], strict=True):
                    record[f"ndcg@10_kept_pct_{set_name}"] = _pct(value, kept.get(set_name))
            out.append(record)
    return pl.DataFrame(out, infer_schema_length=None) if out else pl.DataFrame()


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _pct(num: float | None, den: float | None) -> float | None:
    ratio = _ratio(num, den)
    return None if ratio is None else 100.0 * ratio


def cost_table(train: Sequence[Mapping[str, Any]], corpus_chunks: int) -> pl.DataFrame:
    """Per model x method: measured training cost, and the hours one pass over the full corpus would take.

    The extrapolation counts the rows the method's datasets held per chunk of the corpus they came from
    (train_metrics.json: rows read x epochs / corpus chunks at training time), times the measured rate;
    where that is not recorded, one training sample per corpus chunk. Data preparation the method needs
    (mining, teacher embeddings) is added where train_metrics.json records it.
    """
    rows = []
    for m in train:
        rate, trainable, total = m.get("samples_per_s"), m.get("trainable_params"), m.get("total_params")
        samples_per_chunk = m.get("samples_per_corpus_chunk") or 1.0
        prep_hours = (m.get("data_prep_s_per_chunk") or 0.0) * corpus_chunks / 3600
        hours = corpus_chunks * samples_per_chunk / rate / 3600 + prep_hours if rate else None
        rows.append(
            {
                "model": m["model"],
                "method": m["method"],
                "type": m.get("type"),
                "device": m.get("device"),
                "wall_time_s": m.get("wall_time_s"),
                "train_time_s": m.get("train_time_s"),
                "samples": m.get("samples"),
                "steps": m.get("steps"),
                "samples_per_s": rate,
                "peak_ram_mb": m.get("peak_ram_mb"),
                "peak_gpu_mb": m.get("peak_gpu_mb"),
                "trainable_params": trainable,
                "total_params": total,
                "trainable_pct": 100.0 * trainable / total if trainable is not None and total else None,
                "corpus_chunks": corpus_chunks,
                "full_corpus_hours": hours,
            }
        )
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None).sort("model", "method")


def probe_table(probes: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    rows = []
    for p in probes:
        for label, result in p.get("labels", {}).items():
            row = {"model": p["model"], "method": p["method"], "label": label}
            if "skipped" in result:
                rows.append(row | {"skipped": result["skipped"]})
                continue
            rows.append(
                row
                | {
                    "n_docs": result["n_docs"],
                    "n_classes": result["n_classes"],
                    "majority_accuracy": result["majority_accuracy"],
                    "logreg_accuracy": result["logreg"]["accuracy"],
                    "logreg_macro_f1": result["logreg"]["macro_f1"],
                    "knn_accuracy": result["knn"]["accuracy"],
                    "knn_macro_f1": result["knn"]["macro_f1"],
                    "kmeans_v_measure": result["kmeans_v_measure"],
                    "skipped": None,
                }
            )
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None).sort("label", "model", "method")


def compression_table(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Per model x method x test set x encoding: bytes per stored vector and NDCG@10 kept."""
    rows = [
        {"model": r["model"], "method": r["method"], "variant": r["variant"], **row}
        for r in records
        for row in r.get("rows", [])
    ]
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows, infer_schema_length=None).sort(
        "model", "method", "query_set", maintain_order=True
    )
