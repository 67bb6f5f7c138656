"""The comparison report: summary tables, training cost, INT8 vs FP32, the quality x latency Pareto plot.

Reads only the JSON contracts of the earlier stages (docs/ARCHITECTURE.md), so it can be rerun alone
and tested on hand-made inputs. Rows are sorted by model, method and variant (torch, onnx-fp32,
onnx-int8), whatever order the files arrive in.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .corpus import scan_chunks
from .io import atomic_path, read_json, write_parquet, write_text
from .metrics import RETRIEVAL_METRICS
from .variants import NAMES as VARIANTS  # the registry order

log = logging.getLogger(__name__)

QUALITY = "ndcg@10"  # the headline metric: the Pareto plot's y axis and "quality kept" in the INT8 table
LATENCY = "latency_p50_ms"  # batch-1 median: what one search request waits for


# --- reading ---


def _key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return record["model"], record["method"], record["variant"]


def read_train_metrics(models: Iterable[str | os.PathLike]) -> list[dict]:
    """train_metrics.json of each results/models/{model}/{method}/ folder."""
    return [read_json(Path(folder) / "train_metrics.json") for folder in models]


def read_fidelity(onnx: Iterable[str | os.PathLike]) -> dict[tuple[str, str], dict]:
    """fidelity.json of each results/onnx/{model}/{method}/ folder, keyed by (model, method) from the path
    (the file itself does not name them)."""
    return {
        (Path(folder).parent.name, Path(folder).name): read_json(Path(folder) / "fidelity.json")
        for folder in onnx
    }


def corpus_size(chunks: str | os.PathLike) -> int:
    return int(scan_chunks(chunks).select(pl.len()).collect().item())


# --- tables ---


def summary_table(
    evaluations: Sequence[Mapping[str, Any]],
    latencies: Sequence[Mapping[str, Any]],
    fidelity: Mapping[tuple[str, str], Mapping[str, Any]],
    min_mean_cosine: float,
) -> pl.DataFrame:
    """One row per model x method x variant: quality with CIs, STS, latency, size, fidelity, flags."""
    if not evaluations:
        raise ValueError("no evaluations to summarize")
    by_key = {_key(lat): lat for lat in latencies}
    missing = sorted({_key(e) for e in evaluations} ^ set(by_key))
    if missing:
        raise ValueError(f"evaluations and latency measurements differ on {missing}")
    sts_names = sorted({name for e in evaluations for name in e.get("sts", {})})
    rows = []
    for ev in evaluations:
        model, method, variant = _key(ev)
        lat = by_key[_key(ev)]
        row: dict[str, Any] = {"model": model, "method": method, "variant": variant}
        row["n_queries"] = ev.get("n_queries")
        row["n_corpus"] = ev.get("n_corpus")
        for metric in RETRIEVAL_METRICS:
            entry = ev["retrieval"].get(metric, {})
            row[metric] = entry.get("value")
            row[f"{metric}_ci_low"] = entry.get("ci_low")
            row[f"{metric}_ci_high"] = entry.get("ci_high")
        for name in sts_names:
            row[f"sts_{name}_spearman"] = ev.get("sts", {}).get(name, {}).get("spearman")
        row["mean_random_pair_cosine"] = ev.get("diagnostics", {}).get("mean_random_pair_cosine")
        batch1 = lat.get("batch1_ms") or {}
        row["latency_p50_ms"] = batch1.get("p50")
        row["latency_p95_ms"] = batch1.get("p95")
        row["latency_p99_ms"] = batch1.get("p99")
        row["throughput_texts_per_s"] = lat.get("throughput_texts_per_s")
        row["throughput_batch"] = lat.get("throughput_batch")
        row["load_time_s"] = lat.get("load_time_s")
        row["peak_rss_mb"] = lat.get("peak_rss_mb")
        row["size_mb"] = lat.get("size_mb")
        row["threads"] = lat.get("threads")
        row["device"] = lat.get("device")
        row["cpu"] = lat.get("cpu")
        row.update(_fidelity_columns(fidelity.get((model, method)), variant, min_mean_cosine))
        if row["size_mb"] is None:
            row["size_mb"] = row.pop("_fidelity_size_mb")
        row.pop("_fidelity_size_mb", None)
        rows.append(row)

    frame = pl.DataFrame(rows, schema=_summary_schema(sts_names), orient="row")
    frame = frame.with_columns(pareto_optimal=pl.Series(pareto_front(frame[LATENCY], frame[QUALITY])))
    return _sorted(frame)


def _fidelity_columns(fid: Mapping[str, Any] | None, variant: str, min_mean_cosine: float) -> dict:
    """The variant's agreement with torch; torch is the reference, so it is never flagged."""
    cols = {
        "fidelity_mean_cosine": None,
        "fidelity_min_cosine": None,
        "fidelity_spearman": None,
        "fidelity_passed": None,
        "low_fidelity": False if variant == "torch" else None,
        "_fidelity_size_mb": None,
    }
    entry = (fid or {}).get("variants", {}).get(variant)
    if variant == "torch" or entry is None:
        return cols
    mean_cos = entry.get("mean_cosine")
    cols.update(
        fidelity_mean_cosine=mean_cos,
        fidelity_min_cosine=entry.get("min_cosine"),
        fidelity_spearman=entry.get("spearman"),
        fidelity_passed=entry.get("passed"),
        _fidelity_size_mb=entry.get("size_mb"),
    )
    # Flag under the configured threshold, and also what the export gate itself failed (it holds FP32 to
    # a stricter bound than the threshold).
    cols["low_fidelity"] = bool(
        (mean_cos is not None and mean_cos < min_mean_cosine) or entry.get("passed") is False
    )
    return cols


def _summary_schema(sts_names: Sequence[str]) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {"model": pl.String, "method": pl.String, "variant": pl.String}
    schema |= {"n_queries": pl.Int64, "n_corpus": pl.Int64}
    for metric in RETRIEVAL_METRICS:
        schema |= {metric: pl.Float64, f"{metric}_ci_low": pl.Float64, f"{metric}_ci_high": pl.Float64}
    schema |= {f"sts_{name}_spearman": pl.Float64 for name in sts_names}
    floats = ["mean_random_pair_cosine", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
    floats += ["throughput_texts_per_s"]
    schema |= dict.fromkeys(floats, pl.Float64)
    schema |= {"throughput_batch": pl.Int64}
    schema |= dict.fromkeys(["load_time_s", "peak_rss_mb", "size_mb"], pl.Float64)
    schema |= {"threads": pl.Int64, "device": pl.String, "cpu": pl.String}
    schema |= dict.fromkeys(["fidelity_mean_cosine", "fidelity_min_cosine", "fidelity_spearman"], pl.Float64)
    schema |= {"fidelity_passed": pl.Boolean, "low_fidelity": pl.Boolean}
    return schema


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    rank = {v: i for i, v in enumerate(VARIANTS)}
    if "variant" not in frame.columns:
        return frame.sort("model", "method")
    return (
        frame.with_columns(
            _order=pl.col("variant").replace_strict(rank, default=len(rank), return_dtype=pl.Int64)
        )
        .sort("model", "method", "_order", "variant")
        .drop("_order")
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


def cost_table(train_metrics: Sequence[Mapping[str, Any]], corpus_chunks: int) -> pl.DataFrame:
    """Per model x method: measured training cost and the hours one pass over the full corpus would take.

    The extrapolation counts one training sample per corpus chunk (one epoch over every chunk) at the
    measured samples/s: hours = corpus_chunks / samples_per_s / 3600. Methods that do not train
    (baseline) have no throughput and no extrapolation.
    """
    rows = []
    for m in train_metrics:
        rate = m.get("samples_per_s")
        trainable, total = m.get("trainable_params"), m.get("total_params")
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
                "full_corpus_hours": corpus_chunks / rate / 3600 if rate else None,
            }
        )
    schema = {"model": pl.String, "method": pl.String, "type": pl.String, "device": pl.String}
    schema |= {"wall_time_s": pl.Float64, "train_time_s": pl.Float64, "samples": pl.Int64, "steps": pl.Int64}
    schema |= {"samples_per_s": pl.Float64, "peak_ram_mb": pl.Float64, "peak_gpu_mb": pl.Float64}
    schema |= {"trainable_params": pl.Int64, "total_params": pl.Int64, "trainable_pct": pl.Float64}
    schema |= {"corpus_chunks": pl.Int64, "full_corpus_hours": pl.Float64}
    return _sorted(pl.DataFrame(rows, schema=schema, orient="row"))


def int8_table(summary: pl.DataFrame) -> pl.DataFrame:
    """Per model x method: what INT8 costs and buys against torch FP32 and against ONNX FP32.

    size ratio = INT8 size / reference size; batch-1 speedup = reference p50 / INT8 p50; throughput
    speedup = INT8 texts/s / reference texts/s (at the latency stage's throughput_batch, 32 by default);
    quality kept = 100 x INT8 NDCG@10 / reference NDCG@10; cosines are INT8 vs torch on the export's
    fidelity sample.
    """
    rows = []
    for (model, method), group in summary.group_by(["model", "method"], maintain_order=True):
        by_variant = {r["variant"]: r for r in group.iter_rows(named=True)}
        int8 = by_variant.get("onnx-int8")
        if int8 is None:
            continue
        torch, fp32 = by_variant.get("torch", {}), by_variant.get("onnx-fp32", {})
        rows.append(
            {
                "model": model,
                "method": method,
                "size_mb_torch": torch.get("size_mb"),
                "size_mb_onnx_fp32": fp32.get("size_mb"),
                "size_mb_onnx_int8": int8["size_mb"],
                "size_ratio_vs_torch": _ratio(int8["size_mb"], torch.get("size_mb")),
                "size_ratio_vs_onnx_fp32": _ratio(int8["size_mb"], fp32.get("size_mb")),
                "speedup_batch1_vs_torch": _ratio(torch.get(LATENCY), int8[LATENCY]),
                "speedup_batch1_vs_onnx_fp32": _ratio(fp32.get(LATENCY), int8[LATENCY]),
                "throughput_batch": int8["throughput_batch"],
                "speedup_throughput_vs_torch": _ratio(
                    int8["throughput_texts_per_s"], torch.get("throughput_texts_per_s")
                ),
                "speedup_throughput_vs_onnx_fp32": _ratio(
                    int8["throughput_texts_per_s"], fp32.get("throughput_texts_per_s")
                ),
                "mean_cosine": int8["fidelity_mean_cosine"],
                "min_cosine": int8["fidelity_min_cosine"],
                "ndcg@10_torch": torch.get(QUALITY),
                "ndcg@10_onnx_int8": int8[QUALITY],
                "ndcg@10_kept_pct": _pct(int8[QUALITY], torch.get(QUALITY)),
                "ndcg@10_kept_pct_vs_onnx_fp32": _pct(int8[QUALITY], fp32.get(QUALITY)),
                "low_fidelity": int8["low_fidelity"],
            }
        )
    schema = {"model": pl.String, "method": pl.String}
    floats = ["size_mb_torch", "size_mb_onnx_fp32", "size_mb_onnx_int8", "size_ratio_vs_torch"]
    floats += ["size_ratio_vs_onnx_fp32", "speedup_batch1_vs_torch", "speedup_batch1_vs_onnx_fp32"]
    schema |= dict.fromkeys(floats, pl.Float64) | {"throughput_batch": pl.Int64}
    floats = ["speedup_throughput_vs_torch", "speedup_throughput_vs_onnx_fp32", "mean_cosine", "min_cosine"]
    floats += ["ndcg@10_torch", "ndcg@10_onnx_int8", "ndcg@10_kept_pct", "ndcg@10_kept_pct_vs_onnx_fp32"]
    schema |= dict.fromkeys(floats, pl.Float64) | {"low_fidelity": pl.Boolean}
    return _sorted(pl.DataFrame(rows, schema=schema, orient="row"))


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _pct(num: float | None, den: float | None) -> float | None:
    ratio = _ratio(num, den)
    return None if ratio is None else 100.0 * ratio


# --- the plot ---


def plot_pareto(summary: pl.DataFrame, png: str | os.PathLike, svg: str | os.PathLike) -> None:
    """NDCG@10 against batch-1 p50 latency: colour by variant, shape by model, marker area by size on
    disk; Pareto points ringed, joined and named; low-fidelity points crossed out."""
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, NullFormatter

    points = summary.filter(pl.col(LATENCY).is_not_null() & pl.col(QUALITY).is_not_null())
    colours = {"torch": "#1f77b4", "onnx-fp32": "#2ca02c", "onnx-int8": "#d62728"}
    shapes = dict(zip(sorted(set(points["model"])), "osD^vP*Xhp" * 10, strict=False))
    sizes = points["size_mb"].fill_null(0).to_numpy().astype(float)
    # area in pt^2 proportional to size, from 30 (smallest) to 600 (largest) so every point stays visible
    span = sizes.max() - sizes.min() if len(sizes) else 0
    areas = 30 + 570 * ((sizes - sizes.min()) / span if span > 0 else np.full(len(sizes), 0.5))
    points = points.with_columns(_area=pl.Series(areas, dtype=pl.Float64))

    with matplotlib.rc_context({"svg.hashsalt": "archive-encoders", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
        for (model, variant), group in points.group_by(["model", "variant"], maintain_order=True):
            ax.scatter(
                group[LATENCY],
                group[QUALITY],
                s=group["_area"],
                marker=shapes[model],
                c=colours.get(variant, "#7f7f7f"),
                alpha=0.55,
                edgecolors="none",
            )
        flagged = points.filter(pl.col("low_fidelity").fill_null(False))
        ax.scatter(flagged[LATENCY], flagged[QUALITY], s=60, marker="x", c="black", linewidths=1.2)
        front = points.filter(pl.col("pareto_optimal")).sort(LATENCY)
        ax.scatter(
            front[LATENCY], front[QUALITY], s=front["_area"] + 60, facecolors="none", edgecolors="black"
        )
        ax.step(front[LATENCY], front[QUALITY], where="post", color="black", linewidth=0.8, alpha=0.6)
        for row in front.iter_rows(named=True):
            label = f"{row['model']}/{row['method']}/{row['variant']}"
            ax.annotate(
                label, (row[LATENCY], row[QUALITY]), xytext=(6, 6), textcoords="offset points", fontsize=8
            )

        lat = points[LATENCY].to_numpy()
        if len(lat) and lat.min() > 0 and lat.max() / lat.min() > 5:
            ax.set_xscale("log")  # torch vs INT8 spans several x; a linear axis crowds the fast points
            plain = FuncFormatter(lambda x, _: f"{x:g}")
            ax.xaxis.set_major_formatter(plain)
            # label the 2..9 minor ticks only while they are few enough to read
            ax.xaxis.set_minor_formatter(plain if lat.max() / lat.min() < 20 else NullFormatter())
        ax.margins(x=0.15, y=0.1)  # room for the labels of the points at the edges
        ax.set_xlabel("batch-1 latency, p50 (ms), lower is better")
        ax.set_ylabel("NDCG@10 on the held-out queries, higher is better")
        ax.set_title("Quality vs latency (marker area ∝ model size on disk)")
        ax.grid(True, which="both", alpha=0.3)
        # proxy handles: one entry per colour, shape and mark, whatever the markers' sizes
        handles = [
            Line2D([], [], ls="", marker="o", color=colours.get(v, "#7f7f7f"), label=v)
            for v in [*VARIANTS, *sorted(set(points["variant"]) - set(VARIANTS))]
            if v in set(points["variant"])
        ]
        handles += [Line2D([], [], ls="", marker=m, color="grey", label=model) for model, m in shapes.items()]
        handles += [Line2D([], [], ls="", marker="o", mfc="none", mec="black", label="Pareto-optimal")]
        if flagged.height:
            handles += [Line2D([], [], ls="", marker="x", color="black", label="low fidelity")]
        ax.legend(handles=handles, loc="best", fontsize=8)
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
        with atomic_path(svg) as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)


# --- markdown ---


HOW_TO_READ = """\
- **Quality** is measured on held-out documents the models never trained on. NDCG@10 is the headline;
  the brackets are a 95 % bootstrap interval over queries. When two intervals overlap, these queries do
  not establish which is better; more queries narrow the intervals.
- **Latency** is batch-1 p50/p95 over real query- and passage-length texts after warm-up. Every variant
  of a model was measured in one job, interleaved, so the ratios between variants are more trustworthy
  than absolute milliseconds on a shared machine. **Throughput** is texts/s at the configured batch
  (`throughput_batch`, 32 by default).
- **Fidelity** is the cosine between each ONNX variant's embeddings and torch's on a fixed sample of
  chunks; a variant under mean cosine {threshold} (or failing the export's own gate) is flagged.
- **STS** is the Spearman correlation between cosine similarity and gold similarity scores.
- `mean_random_pair_cosine` (in summary.csv) is the mean cosine of random passage pairs: a diagnostic of
  anisotropy (how crowded the embedding space is), **not** a quality measure.
- **Training cost** extrapolates the measured training throughput to the full corpus, counting **one
  training sample per corpus chunk** (one epoch): hours = chunks / (samples per second) / 3600.
  Baselines do not train and have no extrapolation.
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _with_ci(row: Mapping[str, Any], metric: str) -> str:
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if low is None or high is None:
        return _fmt(row.get(metric))
    return f"{_fmt(row.get(metric))} [{_fmt(low)}, {_fmt(high)}]"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summary_markdown(summary: pl.DataFrame) -> str:
    """The summary at a glance: the headline columns; summary.csv holds every column."""
    sts_cols = [c for c in summary.columns if c.startswith("sts_") and c.endswith("_spearman")]
    header = ["model", "method", "variant", "NDCG@10 [95% CI]", "MRR@10", "Recall@100", "MAP@100"]
    header += [f"STS {c.removeprefix('sts_').removesuffix('_spearman')}" for c in sts_cols]
    header += ["p50 ms", "p95 ms", "texts/s", "MB", "fidelity cos", "flag"]
    rows = []
    for r in summary.iter_rows(named=True):
        flag = ", ".join(
            f for f, on in (("LOW FIDELITY", r["low_fidelity"]), ("Pareto", r["pareto_optimal"])) if on
        )
        rows.append(
            [
                r["model"],
                r["method"],
                r["variant"],
                _with_ci(r, QUALITY),
                _fmt(r["mrr@10"]),
                _fmt(r["recall@100"]),
            ]
            + [_fmt(r["map@100"]), *(_fmt(r[c]) for c in sts_cols)]
            + [
                _fmt(r["latency_p50_ms"], 2),
                _fmt(r["latency_p95_ms"], 2),
                _fmt(r["throughput_texts_per_s"], 1),
            ]
            + [_fmt(r["size_mb"], 1), _fmt(r["fidelity_mean_cosine"], 5), flag]
        )
    return markdown_table(header, rows)


def best_choices(summary: pl.DataFrame) -> dict[str, dict | None]:
    """The rows a reader is most likely looking for.

    best_quality: highest NDCG@10. recommended: the fastest row (batch-1 p50) that is not flagged for
    fidelity and whose NDCG@10 interval reaches the best point estimate, i.e. that these queries cannot
    tell apart from the best. fastest: the fastest row not flagged for fidelity.
    """
    rated = summary.filter(pl.col(QUALITY).is_not_null())
    if rated.is_empty():
        return {"best_quality": None, "recommended": None, "fastest": None}
    best = rated.sort(QUALITY, descending=True, maintain_order=True).row(0, named=True)
    usable = rated.filter(~pl.col("low_fidelity").fill_null(True) & pl.col(LATENCY).is_not_null())
    close = usable.filter(pl.col(f"{QUALITY}_ci_high").fill_null(pl.col(QUALITY)) >= best[QUALITY])
    return {"best_quality": best, "recommended": _fastest(close), "fastest": _fastest(usable)}


def _fastest(frame: pl.DataFrame) -> dict | None:
    """The lowest batch-1 p50; at equal latency the better NDCG@10."""
    if frame.is_empty():
        return None
    return frame.sort([LATENCY, QUALITY], descending=[False, True], maintain_order=True).row(0, named=True)


def _name(row: Mapping[str, Any] | None) -> str:
    return "–" if row is None else f"`{row['model']}/{row['method']}/{row['variant']}`"


def report_markdown(
    summary: pl.DataFrame, cost: pl.DataFrame, int8: pl.DataFrame, min_mean_cosine: float
) -> str:
    choice = best_choices(summary)
    first = summary.row(0, named=True)
    sts_cols = [c for c in summary.columns if c.startswith("sts_") and c.endswith("_spearman")]
    flagged = summary.filter(pl.col("low_fidelity").fill_null(False))
    pareto = summary.filter(pl.col("pareto_optimal"))
    out = ["# Which encoder to deploy for archive search\n"]
    out.append(
        f"{summary['model'].n_unique()} model(s) x {summary['method'].n_unique()} method(s) "
        f"({summary.select('model', 'method').n_unique()} trained models), each as torch FP32, ONNX FP32 "
        f"and ONNX INT8. Quality: {_fmt(first['n_queries'])} "
        f"held-out queries over {_fmt(first['n_corpus'])} passages. Latency: {_fmt(first['device'])}, "
        f"{_fmt(first['threads'])} thread(s), {_fmt(first['cpu'])}.\n"
    )
    out.append("## Best choices\n")
    best, rec, fast = choice["best_quality"], choice["recommended"], choice["fastest"]
    if best is not None:
        out.append(f"- **Best quality**: {_name(best)}, NDCG@10 {_with_ci(best, QUALITY)}.")
    if rec is not None:
        out.append(
            f"- **Recommended for deployment**: {_name(rec)}, NDCG@10 {_with_ci(rec, QUALITY)} at "
            f"{_fmt(rec[LATENCY], 2)} ms per query (p50, batch 1), {_fmt(rec['size_mb'], 1)} MB: the fastest "
            "variant without a fidelity flag whose 95 % interval still reaches the best NDCG@10, i.e. one "
            "these queries cannot tell apart from the best."
        )
    if fast is not None:
        out.append(
            f"- **Fastest** (no fidelity flag): {_name(fast)}, {_fmt(fast[LATENCY], 2)} ms p50, "
            f"NDCG@10 {_with_ci(fast, QUALITY)}."
        )
    if pareto.height:
        names = ", ".join(_name(r) for r in pareto.sort(LATENCY).iter_rows(named=True))
        out.append(f"- **Pareto-optimal** (nothing else is both faster and better): {names}.")
    for col in sts_cols:
        top = summary.filter(pl.col(col).is_not_null()).sort(col, descending=True, maintain_order=True)
        if top.height:
            name = col.removeprefix("sts_").removesuffix("_spearman")
            out.append(
                f"- **Best on STS {name}**: {_name(top.row(0, named=True))}, Spearman {_fmt(top[col][0])}."
            )
    trained = cost.filter(pl.col("full_corpus_hours").is_not_null())
    if trained.height:
        cheap = trained.sort("full_corpus_hours", maintain_order=True).row(0, named=True)
        out.append(
            f"- **Cheapest to train**: `{cheap['model']}/{cheap['method']}`, "
            f"{_fmt(cheap['full_corpus_hours'], 2)} h for one pass over the corpus."
        )
    out.append("")
    if flagged.height:
        out.append(
            f"**Low fidelity** (mean cosine to torch under {min_mean_cosine}, or the export gate failed): "
            + ", ".join(_name(r) for r in flagged.iter_rows(named=True))
            + ". Their quality numbers hold for this data only; prefer another variant.\n"
        )

    out.append("## How to read this\n")
    out.append(HOW_TO_READ.format(threshold=min_mean_cosine))
    out.append("## Summary (all columns in summary.csv / summary.parquet)\n")
    out.append(summary_markdown(summary))
    out.append("![NDCG@10 vs batch-1 latency](pareto.png)\n")
    out.append("## Training cost (unit: one training sample per corpus chunk)\n")
    out.append(
        markdown_table(
            [
                "model",
                "method",
                "wall s",
                "samples/s",
                "peak RAM MB",
                "peak GPU MB",
                "trainable",
                "% trainable",
                "corpus chunks",
                "full-corpus hours",
            ],
            [
                [
                    r["model"],
                    r["method"],
                    _fmt(r["wall_time_s"], 1),
                    _fmt(r["samples_per_s"], 2),
                    _fmt(r["peak_ram_mb"], 0),
                    _fmt(r["peak_gpu_mb"], 0),
                    _fmt(r["trainable_params"]),
                    _fmt(r["trainable_pct"], 2),
                    _fmt(r["corpus_chunks"]),
                    _fmt(r["full_corpus_hours"], 2),
                ]
                for r in cost.iter_rows(named=True)
            ],
        )
    )
    out.append("\n## INT8 vs FP32\n")
    out.append(
        "Size ratio is INT8 size over the reference; speedup is the reference's time over INT8's (batch 1, "
        "p50) and INT8's throughput over the reference's; quality kept is INT8 NDCG@10 as a % of the "
        "reference's.\n"
    )
    out.append(
        markdown_table(
            [
                "model",
                "method",
                "size vs torch",
                "size vs ONNX FP32",
                "batch-1 speedup vs torch",
                "vs ONNX FP32",
                "throughput speedup vs torch",
                "vs ONNX FP32",
                "mean cos",
                "min cos",
                "NDCG@10 kept %",
            ],
            [
                [
                    r["model"],
                    r["method"],
                    _fmt(r["size_ratio_vs_torch"], 2),
                    _fmt(r["size_ratio_vs_onnx_fp32"], 2),
                    _fmt(r["speedup_batch1_vs_torch"], 2),
                    _fmt(r["speedup_batch1_vs_onnx_fp32"], 2),
                    _fmt(r["speedup_throughput_vs_torch"], 2),
                    _fmt(r["speedup_throughput_vs_onnx_fp32"], 2),
                    _fmt(r["mean_cosine"], 4),
                    _fmt(r["min_cosine"], 4),
                    _fmt(r["ndcg@10_kept_pct"], 1),
                ]
                for r in int8.iter_rows(named=True)
            ],
        )
    )
    out.append(
        "\nFiles: summary.{csv,parquet,md}, cost.csv, int8_vs_fp32.csv, pareto.{png,svg}. "
        "`snakemake --report report.html` bundles them into one page.\n"
    )
    return "\n".join(out)


# --- the rule's entry point ---


def summarize(
    models: Sequence[str | os.PathLike],
    onnx: Sequence[str | os.PathLike],
    evaluations: Sequence[str | os.PathLike],
    latency: Sequence[str | os.PathLike],
    chunks: str | os.PathLike,
    summary_parquet: str | os.PathLike,
    summary_csv: str | os.PathLike,
    summary_md: str | os.PathLike,
    cost: str | os.PathLike,
    int8: str | os.PathLike,
    pareto_png: str | os.PathLike,
    pareto_svg: str | os.PathLike,
    report_md: str | os.PathLike,
    export_settings: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Read every stage's JSON and write the report files (each atomically). Returns the summary."""
    fidelity = read_fidelity(onnx)
    thresholds = {f.get("threshold") for f in fidelity.values()} - {None}
    min_mean_cosine = float((export_settings or {}).get("min_mean_cosine") or min(thresholds, default=0.99))
    summary = summary_table(
        [read_json(p) for p in evaluations], [read_json(p) for p in latency], fidelity, min_mean_cosine
    )
    costs = cost_table(read_train_metrics(models), corpus_size(chunks))
    int8_frame = int8_table(summary)

    write_parquet(summary, summary_parquet)
    _write_csv(summary, summary_csv)
    write_text(summary_md, summary_markdown(summary))
    _write_csv(costs, cost)
    _write_csv(int8_frame, int8)
    plot_pareto(summary, pareto_png, pareto_svg)
    write_text(report_md, report_markdown(summary, costs, int8_frame, min_mean_cosine))
    log.info("summarized %d rows (%d Pareto-optimal)", summary.height, int(summary["pareto_optimal"].sum()))
    return summary


def _write_csv(frame: pl.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)
