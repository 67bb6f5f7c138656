"""The verdict: which retriever to deploy, by a paired non-inferiority test, never by overlapping intervals.

On every decision set (config report.decision_sets; by default every test set that can decide, see
`decision_sets`), the best row is the one
with the highest NDCG@10. A row is *non-inferior* on a set when the lower end of the 95 % interval of its
paired difference to the best row is above -margin (report.margin, 0.01 NDCG@10 by default). The
recommendation is the fastest row (batch-1 query p50) that is non-inferior on every decision set and not
flagged for low fidelity; BM25 and the hybrids compete like any other row, so a dense encoder is only
recommended when it is as good as keyword search.

When the sets disagree (no row is within the margin of the best on all of them), the recommendation is
the row whose largest shortfall against a set's best is smallest (minimax regret on the paired
differences), and the report says that no row could be shown non-inferior everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from archive_encoders import paths
from archive_encoders.datasets.querysets import lexical_by_construction, people_written
from archive_encoders.evaluate.compare import DENSE, LEXICAL
from archive_encoders.evaluate.metrics import HEADLINE
from archive_encoders.evaluate.stats import Interval, non_inferior
from archive_encoders.report.tables import LATENCY
from archive_encoders.variants import variant as variant_entry

ROW = ["model", "method", "variant", "retriever"]
HYBRID_PREFIX = "hybrid-"  # compare's hybrid rows: hybrid-rrf, hybrid-weighted


def decision_sets(summary: pl.DataFrame, configured: Sequence[str] | None) -> list[str]:
    """The test sets the verdict must hold on: the configured ones, or by default the sets queries were
    written for by people (a team's own, cataloguers' metadata) first, then the generated sets that no
    retriever family wins by construction. keyword and spelling (the passage's own words: BM25 scores ~1.0)
    decide only when named; alone, they are all there is to decide on."""
    available = summary["query_set"].unique(maintain_order=True).to_list()
    if not configured:
        fair = [s for s in available if not lexical_by_construction(s)]
        people = [s for s in fair if people_written(s)]
        return people + [s for s in fair if s not in people] or available
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
    rule = "non-inferior"
    recommended = eligible.row(0, named=True) if eligible.height else None
    if recommended is None:
        rule = "smallest worst-case loss"
        recommended = least_worst(decided, len(sets))
    best = {
        name: group.sort(HEADLINE, descending=True).row(0, named=True)
        for (name,), group in decided.group_by(["query_set"], maintain_order=True)
    }
    return {
        "rule": rule if recommended is not None else None,
        "recommended": recommended,
        "eligible": eligible,
        "best": best,
        "dense_vs_bm25": best_dense_vs_bm25(decided),
        "sets": list(sets),
        "margin": margin,
    }


def least_worst(decided: pl.DataFrame, n_sets: int) -> dict[str, Any] | None:
    """The row (present on every set, not low-fidelity) whose worst paired difference to a set's best
    is the least negative; ties by latency."""
    worst = (
        decided.filter(~pl.col("low_fidelity").fill_null(False) & pl.col(LATENCY).is_not_null())
        .group_by(ROW, maintain_order=True)
        .agg(
            pl.col("delta_vs_best").min().alias("worst_delta"),
            pl.len().alias("n_sets"),
            pl.col(HEADLINE).mean().alias("mean_ndcg"),
            pl.col(LATENCY).first(),
            pl.col("low_fidelity").first(),
        )
        .filter(pl.col("n_sets") == n_sets)
        .sort(["worst_delta", LATENCY], descending=[True, False])
    )
    return worst.row(0, named=True) if worst.height else None


def dense_part(choice: Mapping[str, Any], summary: pl.DataFrame) -> dict[str, Any] | None:
    """The dense row the index serves: the recommendation itself, a hybrid's dense half, or (when BM25 is
    recommended) the dense row the same rule picks among dense rows only."""
    row = choice["recommended"]
    if row is None:
        return None
    if row["retriever"] != LEXICAL:
        return {**row, "retriever": DENSE}
    dense = choose(summary.filter(pl.col("retriever") == DENSE), choice["sets"], choice["margin"])
    return dense["recommended"]


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


def recommendation_record(choice: Mapping[str, Any], summary: pl.DataFrame) -> dict[str, Any]:
    """recommendation.json: the row to deploy, by which rule, and the dense variant the `index` target
    builds (`artefact`: the folder it is served from; for a hybrid its dense half, for BM25 the best
    dense row, since a vector index needs one). `fusion` {method, weight}: how a hybrid recommendation fuses
    its dense half with BM25 (the weighted hybrid's dense weight as compare chose it on val), else None."""
    row = choice["recommended"]
    empty = {"model": None, "method": None, "variant": None, "retriever": None, "artefact": None}
    if row is None:
        return {**empty, "reason": "no row was evaluated on every decision set"}
    record = {k: row[k] for k in ROW} | {"rule": choice["rule"]}
    dense = dense_part(choice, summary)
    record["index"] = None if dense is None else {k: dense[k] for k in ("model", "method", "variant")}
    record["artefact"] = None
    if dense is not None:
        kind = variant_entry(dense["variant"]).artefact
        record["artefact"] = paths.ARTEFACTS[kind].format(model=dense["model"], method=dense["method"])
    record["fusion"] = fusion_of(row, summary)
    rows = summary.filter(_is_row(row) & pl.col("query_set").is_in(choice["sets"]))
    record |= {
        "decision_sets": choice["sets"],
        "margin": choice["margin"],
        "mean_ndcg@10": row["mean_ndcg"],
        LATENCY: row[LATENCY],
        "ndcg@10": {
            r["query_set"]: {
                k: r[f"{HEADLINE}{s}"]
                for k, s in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))
            }
            for r in rows.iter_rows(named=True)
        },
    }
    return record


def fusion_of(row: Mapping[str, Any], summary: pl.DataFrame) -> dict[str, Any] | None:
    """{method, weight} of a hybrid row (weight None for RRF); None for a dense or BM25 row."""
    retriever = row["retriever"]
    if not retriever.startswith(HYBRID_PREFIX):
        return None
    method = retriever[len(HYBRID_PREFIX) :]
    weight = None
    if method == "weighted" and "fusion_weight" in summary.columns:
        weights = summary.filter(_is_row(row))["fusion_weight"].drop_nulls().unique().to_list()
        if len(weights) > 1:
            raise ValueError(f"{'/'.join(row[k] for k in ROW)}: several fusion weights {weights}")
        weight = float(weights[0]) if weights else None
    return {"method": method, "weight": weight}
