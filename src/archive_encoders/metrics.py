"""Retrieval and STS metrics: ranx for the IR metrics, scipy for bootstrap intervals and Spearman.

Relevance grades are integers; a grade >= 1 is relevant. NDCG uses linear gain (Järvelin & Kekäläinen,
as trec_eval and sentence-transformers' InformationRetrievalEvaluator do). MAP@k divides by the number of
relevant documents of the query (trec_eval's convention); sentence-transformers divides by min(k, #rel),
which is the same whenever a query has no more than k relevant documents.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .vectors import cosines, unit

log = logging.getLogger(__name__)

# The metrics of the eval JSON, in ranx's names (which are also the JSON keys).
RETRIEVAL_METRICS = ("ndcg@1", "ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100")
CONFIDENCE = 0.95

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]


def per_query_scores(
    qrels: Qrels, run: Run, metrics: Sequence[str] = RETRIEVAL_METRICS
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per-query scores from ranx, as (query ids, {metric: array aligned with those ids}).

    `qrels` and `run` must hold the same query ids; a run's documents are ranked by descending score.
    """
    import ranx
    from numba.core.errors import NumbaTypeSafetyWarning

    if set(qrels) != set(run):
        missing = sorted(set(qrels) ^ set(run))[:5]
        raise ValueError(f"qrels and run must hold the same queries (differ on e.g. {missing})")
    query_ids = sorted(qrels)  # ranx sorts its queries by id; keep our arrays aligned with that order
    ranx_qrels = ranx.Qrels({q: {d: int(g) for d, g in qrels[q].items()} for q in query_ids})
    ranx_run = ranx.Run({q: {d: float(s) for d, s in run[q].items()} for q in query_ids})
    with warnings.catch_warnings():
        # ranx hashes doc ids to uint64 and numba warns on the cast; harmless, and noisy in every log
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        # threads=1: scoring takes milliseconds, and numba's default (every core of the node) would reach
        # outside the job's allocation on a cluster
        scores = ranx.evaluate(
            ranx_qrels, ranx_run, list(metrics), return_mean=False, save_results_in_run=False, threads=1
        )
    if len(metrics) == 1:  # ranx returns the bare array for a single metric
        scores = {metrics[0]: scores}
    if list(ranx_run.keys()) != query_ids:  # guards the alignment against a change in a ranx release
        raise RuntimeError("ranx reordered the queries; per-query scores would be misaligned")
    return query_ids, {m: np.asarray(scores[m], dtype=np.float64) for m in metrics}


def bootstrap_ci(
    values: np.ndarray, samples: int, seed: int, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean over the last axis (queries).

    `values` may be 2-D (metrics x queries): every metric is resampled with the same query draws, so the
    intervals of one evaluation are paired. Percentile rather than BCa: BCa is undefined when every query
    scores the same (a perfect ranking), and the percentile interval always contains the mean.
    """
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1]
    if n < 2:
        nan = np.full(values.shape[:-1], np.nan)
        return nan, nan.copy()
    result = bootstrap(
        (values,),
        np.mean,
        n_resamples=samples,
        confidence_level=confidence,
        method="percentile",
        axis=-1,
        vectorized=True,
        batch=max(1, 2_000_000 // max(1, values.size)),  # bounds memory: resamples x metrics x queries
        rng=np.random.default_rng(seed),
    )
    return result.confidence_interval.low, result.confidence_interval.high


def retrieval_metrics(
    qrels: Qrels,
    run: Run,
    bootstrap_samples: int,
    seed: int,
    metrics: Sequence[str] = RETRIEVAL_METRICS,
) -> dict[str, dict[str, float | None]]:
    """{metric: {"value", "ci_low", "ci_high"}}: the mean over queries and its bootstrap 95 % interval."""
    _, scores = per_query_scores(qrels, run, metrics)
    matrix = np.stack([scores[m] for m in metrics])
    low, high = bootstrap_ci(matrix, bootstrap_samples, seed)
    if matrix.shape[1] < 2:
        log.warning("only %d query: no confidence interval", matrix.shape[1])
    return {
        m: {"value": float(matrix[i].mean()), "ci_low": _finite(low[i]), "ci_high": _finite(high[i])}
        for i, m in enumerate(metrics)
    }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get average ranks); None where it is undefined (fewer than two
    values, or one side constant), so a JSON never holds a NaN."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return _finite(spearmanr(a, b).statistic)


def sts_spearman(emb1: np.ndarray, emb2: np.ndarray, gold: Sequence[float]) -> float | None:
    """Spearman correlation between the cosine of each pair and its gold score (the STS-B convention)."""
    return spearman(cosines(emb1, emb2), gold)


def mean_random_pair_cosine(embeddings: np.ndarray, seed: int, pairs: int = 1000) -> float | None:
    """Mean cosine of random pairs of distinct texts: a diagnostic of anisotropy, NOT a quality metric.

    A high value means embeddings crowd into a narrow cone; it says nothing about whether the right
    passages rank first, so it never enters the summary's quality columns.
    """
    n = len(embeddings)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=pairs)
    j = (i + rng.integers(1, n, size=pairs)) % n  # j != i without rejection sampling
    rows = unit(embeddings)
    return float(np.mean(np.sum(rows[i] * rows[j], axis=1)))
