"""The verdict: which retriever to deploy, by a paired non-inferiority test, never by overlapping intervals.

On every decision set (config report.decision_sets; by default every test set), the best row is the one
with the highest NDCG@10. A row is *non-inferior* on a set when the lower end of the 95 % interval of its
paired difference to the best row is above -margin (report.margin, 0.01 NDCG@10 by default). The
recommendation is the fastest row (batch-1 query p50) that is non-inferior on every decision set and not
flagged for low fidelity; BM25 and the hybrids compete like any other row, so a dense encoder is only
recommended when it is as good as keyword search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from .. import paths
from ..compare import DENSE, LEXICAL
from ..metrics import HEADLINE
from ..stats import Interval, non_inferior
from ..variants import variant as variant_entry
from .tables import LATENCY

ROW = ["model", "method", "variant", "retriever"]


def decision_sets(summary: pl.DataFrame, configured: Sequence[str] | None) -> list[str]:
    available = summary["query_set"].unique(maintain_order=True).to_list()
    if not configured:
        return available
    missing = [s for s in configured if s not in available]
    if missing:
        raise ValueError(f"report.decision_sets: {missing} were not evaluated (sets: {available})")
    return list(configured)


def with_verdicts(summary: pl.DataFrame, margin: float) -> pl.DataFrame:
    """Adds `non_inferior`: the row is within `margin` of its set's best row by the paired test."""
    flags = [
        non_inferior(Interval(d, lo, hi), margin) if d is not None else False
        for d, lo, hi in summary.select(
            "delta_vs_best", "delta_vs_best_ci_low", "delta_vs_best_ci_high"
        ).rows()
    ]
    return summary.with_columns(non_inferior=pl.Series(flags, dtype=pl.Boolean))


def choose(summary: pl.DataFrame, sets: Sequence[str], margin: float) -> dict[str, Any]:
    """{recommended, best_quality (per set), candidates, dense_vs_bm25 (per set)} for the report."""
    decided = with_verdicts(summary.filter(pl.col("query_set").is_in(list(sets))), margin)
    per_row = decided.group_by(ROW, maintain_order=True).agg(
        pl.col("non_inferior").all().alias("all_non_inferior"),
        pl.len().alias("n_sets"),
        pl.col(HEADLINE).mean().alias("mean_ndcg"),
        pl.col(LATENCY).first(),
        pl.col("low_fidelity").first(),
    )
    eligible = per_row.filter(
        pl.col("all_non_inferior")
        & (pl.col("n_sets") == len(sets))
        & ~pl.col("low_fidelity").fill_null(False)
        & pl.col(LATENCY).is_not_null()
    ).sort([LATENCY, "mean_ndcg"], descending=[False, True])
    recommended = eligible.row(0, named=True) if eligible.height else None
    best = {
        name: group.sort(HEADLINE, descending=True).row(0, named=True)
        for (name,), group in decided.group_by(["query_set"], maintain_order=True)
    }
    return {
        "recommended": recommended,
        "recommended_rows": decided.filter(_is_row(recommended)) if recommended else decided.head(0),
        "eligible": eligible,
        "best": best,
        "dense_vs_bm25": best_dense_vs_bm25(decided),
        "sets": list(sets),
        "margin": margin,
    }


def _is_row(row: Mapping[str, Any]) -> pl.Expr:
    return pl.all_horizontal(pl.col(k) == row[k] for k in ROW)


def best_dense_vs_bm25(summary: pl.DataFrame) -> pl.DataFrame:
    """Per set: the best dense row and its paired difference to BM25."""
    dense = summary.filter(pl.col("retriever") == DENSE)
    rows = []
    for (name,), group in dense.group_by(["query_set"], maintain_order=True):
        top = group.sort(HEADLINE, descending=True).row(0, named=True)
        lexical = summary.filter((pl.col("query_set") == name) & (pl.col("retriever") == LEXICAL))
        rows.append(
            {
                "query_set": name,
                "best_dense": "/".join(top[k] for k in ("model", "method", "variant")),
                "ndcg@10": top[HEADLINE],
                "bm25_ndcg@10": lexical[HEADLINE][0] if lexical.height else None,
                "delta_vs_bm25": top["delta_vs_bm25"],
                "delta_vs_bm25_ci_low": top["delta_vs_bm25_ci_low"],
                "delta_vs_bm25_ci_high": top["delta_vs_bm25_ci_high"],
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def recommendation_record(choice: Mapping[str, Any]) -> dict[str, Any]:
    """recommendation.json: the row to deploy and the folder it is served from (what `index` builds)."""
    row = choice["recommended"]
    empty = {"model": None, "method": None, "variant": None, "retriever": None, "artefact": None}
    if row is None:
        return {**empty, "reason": "no row is non-inferior to the best on every decision set"}
    record = {k: row[k] for k in ROW}
    if row["retriever"] == LEXICAL:
        record["artefact"] = None
    else:
        kind = variant_entry(row["variant"]).artefact
        record["artefact"] = paths.ARTEFACTS[kind].format(model=row["model"], method=row["method"])
    record |= {
        "decision_sets": choice["sets"],
        "margin": choice["margin"],
        "mean_ndcg@10": row["mean_ndcg"],
        LATENCY: row[LATENCY],
        "ndcg@10": {
            r["query_set"]: {
                "value": r[HEADLINE],
                "ci_low": r[f"{HEADLINE}_ci_low"],
                "ci_high": r[f"{HEADLINE}_ci_high"],
            }
            for r in choice["recommended_rows"].iter_rows(named=True)
        },
    }
    return record
