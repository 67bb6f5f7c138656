"""Quality against latency, one panel per test set: where the Pareto front is, and what lies on it."""

from __future__ import annotations

import math
import os

import polars as pl

from archive_encoders.evaluate.metrics import HEADLINE
from archive_encoders.io import atomic_path
from archive_encoders.report.tables import LATENCY

# colour by retriever kind; dense rows by variant
COLOURS = {"lexical": "#000000", "hybrid-rrf": "#9467bd", "hybrid-weighted": "#8c564b"}
VARIANT_COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#17becf", "#e377c2", "#bcbd22"]


def _colour(retriever: str, variant: str, variants: list[str]) -> str:
    if retriever in COLOURS:
        return COLOURS[retriever]
    return (
        VARIANT_COLOURS[variants.index(variant) % len(VARIANT_COLOURS)] if variant in variants else "#7f7f7f"
    )


def _label(row) -> str:
    if row["retriever"] == "lexical":
        return "BM25"
    suffix = "" if row["retriever"] == "dense" else f" + BM25 ({row['retriever'].removeprefix('hybrid-')})"
    return f"{row['model']}/{row['method']}/{row['variant']}{suffix}"


def _panel(ax, points: pl.DataFrame, variants: list[str], name: str) -> None:
    from matplotlib.ticker import FuncFormatter

    for row in points.iter_rows(named=True):
        marker = "x" if row["low_fidelity"] else ("s" if row["retriever"] == "lexical" else "o")
        ax.scatter(row[LATENCY], row[HEADLINE], s=40, marker=marker, alpha=0.7,
                   c=_colour(row["retriever"], row["variant"], variants))  # fmt: skip
    front = points.filter(pl.col("pareto_optimal")).sort(LATENCY)
    ax.step(front[LATENCY], front[HEADLINE], where="post", color="black", linewidth=0.8, alpha=0.6)
    for row in front.iter_rows(named=True):
        ax.annotate(
            _label(row), (row[LATENCY], row[HEADLINE]), xytext=(5, 4), textcoords="offset points", fontsize=7
        )
    latencies = points[LATENCY].to_numpy()
    if len(latencies) and latencies.min() > 0 and latencies.max() / latencies.min() > 5:
        ax.set_xscale("log")  # torch vs static spans orders of magnitude
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_title(f"{name} ({points['n_queries'][0]} queries)", fontsize=9)
    ax.set_xlabel("query latency p50, batch 1 (ms)")
    ax.set_ylabel("NDCG@10")
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.15, y=0.1)


def plot_pareto(summary: pl.DataFrame, png: str | os.PathLike, svg: str | os.PathLike) -> None:
    """NDCG@10 against batch-1 query latency per test set; the Pareto front joined and labelled."""
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    points = summary.filter(pl.col(LATENCY).is_not_null() & pl.col(HEADLINE).is_not_null())
    sets = points["query_set"].unique(maintain_order=True).to_list() or ["(none)"]
    variants = points.filter(pl.col("retriever") == "dense")["variant"].unique(maintain_order=True).to_list()
    cols = min(2, len(sets))
    rows = math.ceil(len(sets) / cols)
    with matplotlib.rc_context({"svg.hashsalt": "archive-encoders", "font.size": 8}):
        fig, axes = plt.subplots(
            rows, cols, figsize=(6 * cols, 4.2 * rows), layout="constrained", squeeze=False
        )
        for ax, name in zip(axes.ravel(), sets, strict=False):
            group = points.filter(pl.col("query_set") == name)
            if group.height:
                _panel(ax, group, variants, name)
        for ax in axes.ravel()[len(sets) :]:
            ax.set_visible(False)
        handles = [
            Line2D([], [], ls="", marker="o", color=_colour("dense", v, variants), label=v) for v in variants
        ]
        handles += [
            Line2D([], [], ls="", marker="s", color="#000000", label="BM25"),
            Line2D([], [], ls="", marker="o", color=COLOURS["hybrid-rrf"], label="hybrid (RRF)"),
            Line2D([], [], ls="", marker="o", color=COLOURS["hybrid-weighted"], label="hybrid (weighted)"),
            Line2D([], [], ls="", marker="x", color="grey", label="low fidelity"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(6, len(handles)), fontsize=7)
        fig.suptitle("Quality vs latency per query set (line: Pareto front)")
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=130, metadata={"Software": None})
        with atomic_path(svg) as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
