"""The report's one entry point: read the stages' outputs, decide, write every table, plot and the
markdown.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from archive_encoders.config import with_defaults
from archive_encoders.datasets.querysets import SET_KINDS, lexical_by_construction, people_written
from archive_encoders.evaluate.compare import DENSE, LEXICAL
from archive_encoders.evaluate.metrics import HEADLINE
from archive_encoders.io import atomic_path, read_json, write_json, write_parquet, write_text
from archive_encoders.report import choice as decide
from archive_encoders.report.inputs import read_inputs
from archive_encoders.report.judged import judging_lines
from archive_encoders.report.plot import plot_pareto
from archive_encoders.report.render import Column, ci, col, fmt, render, row_name, table, with_ci
from archive_encoders.report.tables import (
    LATENCY,
    compression_table,
    cost_table,
    pareto_front,
    probe_table,
    summary_table,
    variants_table,
)
from archive_encoders.variants import REFERENCE

log = logging.getLogger(__name__)


log = logging.getLogger(__name__)


TOP_N = 15
LEVEL_NOTE = {"document": ", scored by document"}


__all__ = ["corpus_size", "pareto_front", "write_report"]


def corpus_size(chunks: str | os.PathLike) -> int:
    """The number of corpus chunks (what the training cost is extrapolated to)."""
    from archive_encoders.corpus.manifest import scan_chunks

    return int(scan_chunks(chunks).select(pl.len()).collect().item())


def _name_column() -> Column:
    return Column("row", lambda r: row_name(r))


METHOD_COLUMNS = [
    _name_column(),
    ci(HEADLINE, "NDCG@10 [95% CI]"),
    ci("delta_vs_base", "Δ vs base", signed=True),
    ci("delta_vs_bm25", "Δ vs BM25", signed=True),
    Column("in-dist.", lambda r: fmt(r.get("in_distribution"))),
]


SET_COLUMNS = [
    _name_column(),
    ci(HEADLINE, "NDCG@10 [95% CI]"),
    col("mrr@10", "MRR@10"),
    col("recall@100", "Recall@100"),
    ci("delta_vs_best", "Δ vs best", signed=True),
    Column("non-inferior", lambda r: fmt(r.get("non_inferior"))),
    col(LATENCY, "query ms", 2),
    col("size_mb", "MB", 1),
    Column("in-dist.", lambda r: fmt(r.get("in_distribution"))),
]


BM25_COLUMNS = [
    Column("query set", lambda r: r["query_set"]),
    Column("best dense row", lambda r: f"`{r['best_dense']}`"),
    col("ndcg@10", "its NDCG@10"),
    col("bm25_ndcg@10", "BM25 NDCG@10"),
    ci("delta_vs_bm25", "Δ [95% CI]", signed=True),
]


COST_COLUMNS = [
    col("model"),
    col("method"),
    col("wall_time_s", "wall s", 1),
    col("samples_per_s", "samples/s", 2),
    col("peak_ram_mb", "peak RAM MB", 0),
    col("peak_gpu_mb", "peak GPU MB", 0),
    col("trainable_params", "trainable"),
    col("trainable_pct", "% trainable", 2),
    col("full_corpus_hours", "full-corpus hours", 2),
]


COMPRESSION_COLUMNS = [
    col("model"),
    col("method"),
    col("query_set", "query set"),
    col("encoding"),
    col("dimension", "dims"),
    Column("rescored", lambda r: fmt(r.get("rescored"))),
    col("bytes_per_vector", "bytes/vector"),
    col("compression", "× smaller", 0),
    col("ndcg@10", "NDCG@10"),
    col("ndcg@10_kept_pct", "kept %", 1),
]


PROBE_COLUMNS = [
    col("label"),
    col("model"),
    col("method"),
    col("n_docs", "docs"),
    col("n_classes", "classes"),
    col("majority_accuracy", "majority acc."),
    col("logreg_accuracy", "logreg acc."),
    col("logreg_macro_f1", "logreg F1"),
    col("knn_accuracy", "kNN acc."),
    col("knn_macro_f1", "kNN F1"),
    col("kmeans_v_measure", "k-means V"),
]


def variant_columns(frame: pl.DataFrame) -> list[Column]:
    kept = [c for c in frame.columns if c.startswith("ndcg@10_kept_pct_")]
    return [
        col("model"),
        col("method"),
        col("variant"),
        col("size_mb", "MB", 1),
        col("query_p50_ms", "query ms", 2),
        col("speedup_query_vs_torch", "× query", 2),
        col("speedup_passage_vs_torch", "× passage", 2),
        col("speedup_throughput_vs_torch", "× batch", 2),
        col("speedup_query_vs_onnx_fp32", "× query vs ONNX FP32", 2),
        col("mean_cosine", "mean cos", 4),
        col("min_cosine", "min cos", 4),
        *(col(c, f"kept % {c.removeprefix('ndcg@10_kept_pct_')}", 1) for c in kept),
    ]


def scope_text(summary: pl.DataFrame, inputs) -> str:
    dense = summary.filter(pl.col("retriever") == DENSE)
    counts = dict(summary.group_by("query_set").agg(pl.col("n_queries").max()).rows())
    levels = dict(summary.select("query_set", "level").unique().rows())
    sets = ", ".join(
        f"{name} ({n} queries{LEVEL_NOTE.get(levels[name], '')})" for name, n in sorted(counts.items())
    )
    return (
        f"{dense['model'].n_unique()} model(s) x {dense['method'].n_unique()} method(s) x "
        f"{dense['variant'].n_unique()} variant(s), BM25, and RRF/weighted hybrids of every dense row "
        f"with BM25, on the held-out test sets: {sets}."
    )


def verdict_lines(result: Mapping[str, Any], summary: pl.DataFrame, costs: pl.DataFrame) -> list[str]:
    lines = []
    for name, best in result["best"].items():
        lines.append(f"Best on **{name}**: {row_name(best)}, NDCG@10 {with_ci(best, HEADLINE)}.")
    eligible = result["eligible"]
    if eligible.height > 1:
        others = ", ".join(row_name(r) for r in eligible.iter_rows(named=True) if r != result["recommended"])
        lines.append(f"Also non-inferior on every decision set (slower): {others}.")
    trained = costs.filter(pl.col("full_corpus_hours").is_not_null()) if costs.height else costs
    if trained.height:
        cheap = trained.sort("full_corpus_hours").row(0, named=True)
        lines.append(
            f"Cheapest to train: `{cheap['model']}/{cheap['method']}`, "
            f"{fmt(cheap['full_corpus_hours'], 2)} h for one pass over the corpus."
        )
    flagged = (
        summary.filter(pl.col("low_fidelity").fill_null(False)).select("model", "method", "variant").unique()
    )
    if flagged.height:
        names = ", ".join(f"`{m}/{me}/{v}`" for m, me, v in flagged.rows())
        lines.append(f"**Low fidelity** (never recommended): {names}.")
    return lines


def method_tables(summary: pl.DataFrame) -> list[tuple[str, str]]:
    """Per set, the reference rows against base and BM25; sets that answer the question first: people's
    queries, then sets out of distribution for every fine-tuned row, then in-distribution ones, then the
    lexical-by-construction ones."""
    out = []
    for (name,), group in sorted(
        summary.group_by(["query_set"], maintain_order=True), key=lambda g: evidence_order(g[0][0], g[1])
    ):
        rows = group.filter(
            ((pl.col("variant") == REFERENCE) & (pl.col("retriever") != LEXICAL))
            | (pl.col("retriever") == LEXICAL)
        )
        out.append((name, table(rows, METHOD_COLUMNS)))
    return out


def evidence_order(name: str, rows: pl.DataFrame) -> int:
    """How directly a set answers "did fine-tuning help?": 0 people-written, 1 out of distribution for
    every row, 2 in distribution for some, 3 lexical by construction."""
    if lexical_by_construction(name):
        return 3
    if people_written(name):
        return 0
    return 2 if rows["in_distribution"].fill_null(False).any() else 1


def set_tables(summary: pl.DataFrame) -> list[tuple[str, str]]:
    out = []
    for (name,), group in summary.group_by(["query_set"], maintain_order=True):
        out.append((name, table(group.sort(HEADLINE, descending=True).head(TOP_N), SET_COLUMNS)))
    return out


def set_notes(summary: pl.DataFrame, set_info: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    notes = {}
    for name in summary["query_set"].unique(maintain_order=True):
        kind = SET_KINDS.get(name)
        default = kind.description if kind else "user-judged queries"
        description = set_info.get(name, {}).get("description") or default
        in_dist = summary.filter((pl.col("query_set") == name) & pl.col("in_distribution"))
        mark = " (in-distribution for the methods that trained on its generator)" if in_dist.height else ""
        if lexical_by_construction(name):
            mark += (
                " — lexical by construction: the queries are the passage's own words, so BM25 wins it "
                "whatever the encoders are worth; it decides only if report.decision_sets names it"
            )
        elif people_written(name):
            mark += " — queries people wrote"
        notes[name] = f" — {description}{mark}"
    return notes


def serving_note(row: Mapping[str, Any] | None) -> str:
    if row is None or row["retriever"] == DENSE:
        return ""
    if row["retriever"] == LEXICAL:
        return (
            "Keyword search is as good as any encoder here: keep BM25. The `index` target serves BM25 by "
            "default, with the best dense row beside it for comparison (`--retriever dense`)."
        )
    fusion = row["retriever"].removeprefix("hybrid-")
    weight = row.get("fusion_weight")
    weight_text = f", dense weight {fmt(weight, 2)} chosen on val" if weight is not None else ""
    return (
        f"It is a hybrid: BM25 and `{row['model']}/{row['method']}/{row['variant']}` fused ({fusion}"
        f"{weight_text}). The `index` target builds both halves and the fusion; `archive-encoders search` "
        "and `serve` answer with it, as evaluated."
    )


def dense_latency(inputs) -> Mapping[str, Any]:
    return next(iter(inputs.latency.values()), {})


def machine_text(latency: Mapping[str, Any]) -> str:
    flags = ", ".join(latency.get("cpu_flags", [])) or "no SIMD flags recorded"
    return f"{latency.get('cpu', 'this machine')} ({flags})"


def skipped_labels(probes: pl.DataFrame) -> list[str]:
    """One line per label a probe could not score, with the reason (the same for every model)."""
    if not probes.height or "skipped" not in probes.columns:
        return []
    skipped = (
        probes.filter(pl.col("skipped").is_not_null()).select("label", "skipped").unique(maintain_order=True)
    )
    return [f"`{label}` skipped: {reason}" for label, reason in skipped.rows()]


def _write_csv(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)


def write_report(
    comparison: str | os.PathLike,
    models: Sequence[str | os.PathLike],
    exports: Sequence[str | os.PathLike],
    evaluations: Sequence[str | os.PathLike],
    lexical: str | os.PathLike,
    latency: Sequence[str | os.PathLike],
    query_sets: str | os.PathLike,
    corpus_chunks: int,
    outputs: Mapping[str, str | os.PathLike],
    report_settings: Mapping[str, Any] | None = None,
    export_settings: Mapping[str, Any] | None = None,
    user_sets: Sequence[str | os.PathLike] = (),
    judging: str | os.PathLike | None = None,
) -> pl.DataFrame:
    """Read every stage's output and write the report files (each atomically). Returns the summary.

    outputs: {name: path} for the names of paths.REPORT_FILES; judging: the judged set's judging.json."""
    settings = with_defaults("report", report_settings)
    min_mean_cosine = float(with_defaults("export", export_settings)["min_mean_cosine"])
    inputs = read_inputs(
        comparison, models, exports, evaluations, lexical, latency, corpus_chunks, query_sets, user_sets
    )
    # 1. the evidence and the decision
    summary = summary_table(inputs, min_mean_cosine)
    sets = decide.decision_sets(summary, settings["decision_sets"])
    result = decide.choose(summary, sets, settings["margin"])
    summary = decide.with_verdicts(summary, settings["margin"])
    tables = {
        "cost": cost_table(inputs.train, corpus_chunks),
        "variants": variants_table(summary),
        "probe": probe_table(inputs.probes),
        "compression": compression_table(inputs.compression),
    }
    # 2. the tables, the plot and the recommendation
    write_parquet(summary, outputs["summary_parquet"])
    _write_csv(summary, outputs["summary_csv"])
    write_text(outputs["summary_md"], "\n".join(f"## {n}\n\n{body}" for n, body in set_tables(summary)))
    for name, frame in tables.items():
        _write_csv(frame, outputs[name])
    plot_pareto(summary, outputs["pareto_png"], outputs["pareto_svg"])
    write_json(outputs["recommendation"], decide.recommendation_record(result, summary))
    # 3. the report a person reads
    write_text(
        outputs["report_md"],
        report_markdown(
            inputs,
            summary,
            sets,
            result,
            tables,
            settings,
            min_mean_cosine,
            read_json(judging) if judging else None,
        ),
    )
    log.info(
        "report: %d rows over %d test sets; recommended %s", summary.height, len(sets), result["recommended"]
    )
    return summary


def report_markdown(
    inputs, summary, sets, result, tables, settings, min_mean_cosine: float, judging: Mapping | None = None
) -> str:
    """report.md from templates/report.md.j2."""
    costs, variants, probes, compression = (tables[k] for k in ("cost", "variants", "probe", "compression"))
    return render(
        "report.md.j2",
        scope=scope_text(summary, inputs),
        recommended=result["recommended"],
        rule=result["rule"],
        serving_note=serving_note(result["recommended"]),
        sets=sets,
        margin=settings["margin"],
        verdict_lines=verdict_lines(result, summary, costs),
        dense_vs_bm25=table(result["dense_vs_bm25"], BM25_COLUMNS),
        notes=[],
        reference=REFERENCE,
        method_tables=method_tables(summary),
        set_notes=set_notes(summary, inputs.set_info),
        set_tables=set_tables(summary),
        judging_lines=judging_lines(judging) if judging else [],
        top_n=TOP_N,
        machine=machine_text(dense_latency(inputs) or inputs.lexical.get("latency", {})),
        variants=table(variants, variant_columns(variants)) if variants.height else "_(none)_\n",
        cost=table(costs, COST_COLUMNS) if costs.height else "_(none)_\n",
        cost_note=COST_NOTE,
        compression=table(compression, COMPRESSION_COLUMNS) if compression.height else "_(none)_\n",
        probe=table(probes.filter(pl.col("skipped").is_null()), PROBE_COLUMNS)
        if probes.height
        else "_(none)_\n",
        probe_skipped=skipped_labels(probes),
        min_mean_cosine=min_mean_cosine,
        fmt=fmt,
    )


COST_NOTE = (
    "*full-corpus hours* extrapolate the measured training rate to the whole corpus, for the training rows "
    "per corpus chunk the method read (plus its data preparation, where recorded)."
)
