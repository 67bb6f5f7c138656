"""Retrieval and STS metrics, per query, in numpy.

Relevance grades are numbers (integers, or the fractions of a team's graded set); a grade above 0 is
relevant. NDCG uses linear gain (Järvelin & Kekäläinen,
as trec_eval, ranx and sentence-transformers' InformationRetrievalEvaluator do). MAP@k divides by the
number of relevant documents of the query (trec_eval's convention). tests/test_metrics.py checks every
metric against hand-computed values and against ranx, which this module replaced in the evaluation jobs:
ranx compiles its numba kernels in every new process (7-15 s per job on two cores), while these take
milliseconds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from itertools import islice

import numpy as np

from archive_encoders.vectors import cosines, spearman, unit

log = logging.getLogger(__name__)

# The metrics of the eval JSON (ranx's names).
RETRIEVAL_METRICS = ("ndcg@1", "ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100")
HEADLINE = "ndcg@10"

Qrels = Mapping[str, Mapping[str, float]]
RankedRun = Mapping[str, Sequence]  # query_id -> ids best first, or (id, score) pairs best first

_METRIC = re.compile(r"(ndcg|mrr|recall|map)@(\d+)")


def _ids(hits: Sequence, depth: int) -> list[str]:
    return [h[0] if isinstance(h, tuple) else h for h in islice(hits, depth)]


def _parse(metric: str) -> tuple[str, int]:
    match = _METRIC.fullmatch(metric)
    if not match:
        raise ValueError(f"metric {metric!r}: expected ndcg@k, mrr@k, recall@k or map@k")
    return match.group(1), int(match.group(2))


def metric_depth(metric: str) -> int:
    """How deep a ranking `metric` looks (its k)."""
    return _parse(metric)[1]


def per_query_scores(
    qrels: Qrels, run: RankedRun, metrics: Sequence[str] = RETRIEVAL_METRICS
) -> tuple[list[str], dict[str, np.ndarray]]:
    """(query ids in qrels order, {metric: per-query array}). Every query of `qrels` is scored (a query
    the run does not answer scores 0); `run` lists each query's documents best first."""
    parsed = [(metric, *_parse(metric)) for metric in metrics]
    extra = set(run) - set(qrels)
    if extra:
        raise ValueError(f"the run answers queries the qrels do not judge, e.g. {sorted(extra)[:3]}")
    query_ids = list(qrels)
    depth = max(k for _, _, k in parsed)
    gains = np.zeros((len(query_ids), depth))
    ideal = np.zeros((len(query_ids), depth))
    n_relevant = np.zeros(len(query_ids))
    for row, qid in enumerate(query_ids):
        judged = qrels[qid]
        ranked = _ids(run.get(qid, ()), depth)
        gains[row, : len(ranked)] = [max(0, judged.get(d, 0)) for d in ranked]
        grades = sorted((g for g in judged.values() if g > 0), reverse=True)[:depth]
        ideal[row, : len(grades)] = grades
        n_relevant[row] = sum(1 for g in judged.values() if g > 0)
    return query_ids, {m: _score(kind, k, gains, ideal, n_relevant) for m, kind, k in parsed}


def _score(kind: str, k: int, gains: np.ndarray, ideal: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    g, hit = gains[:, :k], gains[:, :k] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "ndcg":
            discount = 1.0 / np.log2(np.arange(2, k + 2))
            out = (g * discount).sum(1) / (ideal[:, :k] * discount).sum(1)
        elif kind == "mrr":
            first = np.argmax(hit, axis=1)
            out = np.where(hit.any(axis=1), 1.0 / (first + 1), 0.0)
        elif kind == "recall":
            out = hit.sum(1) / n_relevant
        else:  # map
            precision = np.cumsum(hit, axis=1) / np.arange(1, k + 1)
            out = (precision * hit).sum(1) / n_relevant
    return np.nan_to_num(out, nan=0.0, posinf=0.0)


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
