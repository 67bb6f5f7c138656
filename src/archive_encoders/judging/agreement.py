"""How far the judgments can be trusted: annotators' agreement, and how much of each system's top 10 the
pool's judgments cover (a system whose top 10 is mostly unjudged is scored on guesses: unjudged passages
count as not relevant)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from archive_encoders.judging.store import GRADES

COVERAGE_DEPTH = 10
COVERAGE_FLOOR = 0.5  # below this share of its top 10 judged, a system's scores are flagged


@dataclass(frozen=True)
class Kappa:
    kappa: float  # NaN when chance agreement is 1 (both annotators gave one and the same grade throughout)
    observed: float  # share of pairs with the same grade
    expected: float  # agreement by chance, from each annotator's own grade frequencies
    n_pairs: int


def cohen_kappa(judgments: pl.DataFrame, first: str, second: str) -> Kappa:
    """Unweighted Cohen's kappa over the three grades, on the (query, passage) pairs both annotators
    judged: (p_o - p_e) / (1 - p_e), p_e = sum over grades of the two annotators' shares of that grade."""
    a = judgments.filter(pl.col("annotator") == first).select("query_id", "corpus_id", a="grade")
    b = judgments.filter(pl.col("annotator") == second).select("query_id", "corpus_id", b="grade")
    both = a.join(b, on=["query_id", "corpus_id"], how="inner")
    n = both.height
    if n == 0:
        raise ValueError(f"annotators {first!r} and {second!r} have no (query, passage) judged in common")
    observed = both.filter(pl.col("a") == pl.col("b")).height / n
    share_a = {g: both.filter(pl.col("a") == g).height / n for g in GRADES}
    share_b = {g: both.filter(pl.col("b") == g).height / n for g in GRADES}
    expected = sum(share_a[g] * share_b[g] for g in GRADES)
    kappa = float("nan") if expected == 1 else (observed - expected) / (1 - expected)
    return Kappa(kappa=kappa, observed=observed, expected=expected, n_pairs=n)


def judged_at_k(
    pool: pl.DataFrame, judgments: pl.DataFrame, k: int = COVERAGE_DEPTH, floor: float = COVERAGE_FLOOR
) -> pl.DataFrame:
    """Per system: the share of its top k (fewer if it returned fewer) judged by anyone, per query, averaged
    over the queries it answered; `flagged` when that is below `floor`. Columns system, n_queries,
    judged_at_k, flagged; sorted by system."""
    judged = judgments.select("query_id", "corpus_id").unique().with_columns(judged=pl.lit(True))
    top = pool.filter(pl.col("rank") <= k).select("query_id", "system", "corpus_id")
    per_query = (
        top.join(judged, on=["query_id", "corpus_id"], how="left")
        .group_by("system", "query_id")
        .agg(share=pl.col("judged").fill_null(False).mean())
    )
    return (
        per_query.group_by("system")
        .agg(n_queries=pl.len(), judged_at_k=pl.col("share").mean())
        .with_columns(flagged=pl.col("judged_at_k") < floor)
        .sort("system")
    )
