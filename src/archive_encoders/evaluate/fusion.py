"""Hybrid retrieval: a dense run fused with BM25's, by reciprocal rank or by a weight chosen on val.

- rrf: reciprocal rank fusion, sum of 1 / (k + rank) over the runs a document is in, k = 60: needs no
  tuning, so nothing can leak;
- weighted: each query's scores min-max normalised per run, w * dense + (1 - w) * bm25 (a document a run
  did not return gets 0 from it), with w chosen on the VAL split's query sets pooled (never on test),
  then applied to every test set.

ranx's fuse(method="rrf"/"wsum", norm="min-max") and optimize_fusion(step=0.1) compute the same (tests
check it against ranx); this module replaced them in compare_retrievers, where ranx's per-query
conversion to numba dictionaries took 2 minutes for the demo's 35 rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter

from archive_encoders.evaluate.metrics import metric_depth, per_query_scores
from archive_encoders.evaluate.ranking import TOP_K, Run

RRF_K = 60
WEIGHT_STEP = 0.1
FUSIONS = ("rrf", "weighted")
MIN_SPAN = 1e-9  # a query whose scores are all equal normalises to 0 (ranx's guard too)


def _ranked(scores: Mapping[str, float], k: int = TOP_K) -> list[tuple[str, float]]:
    """Best first; equal scores in document-id order, so a fused run is deterministic."""
    hits = sorted(scores.items())
    hits.sort(key=itemgetter(1), reverse=True)  # stable, reverse included: ties stay in id order
    return hits[:k]


def _min_max(hits: Sequence[tuple[str, float]]) -> dict[str, float]:
    if not hits:
        return {}
    scores = [float(s) for _, s in hits]
    low = min(scores)
    span = max(max(scores) - low, MIN_SPAN)
    return {d: (s - low) / span for (d, _), s in zip(hits, scores, strict=True)}


def _check_queries(dense: Run, lexical: Run) -> None:
    if set(dense) != set(lexical):
        raise ValueError("fusion: the two runs must hold the same queries")


def _checked(hits: Sequence[tuple[str, float]], query: str, run: str, scores: bool = True):
    """`hits` if each id is ranked once (and, where scores count, each score is a finite number), else
    ValueError: a run with either fault would fuse into a ranking with repeats or NaN."""
    seen: set[str] = set()
    for doc, score in hits:
        if doc in seen:
            raise ValueError(f"fusion: the {run} run ranks {doc!r} twice for query {query!r}")
        seen.add(doc)
        if scores and not (isinstance(score, (int, float)) and math.isfinite(score)):
            raise ValueError(
                f"fusion: the {run} run gives {doc!r} the score {score!r} for query {query!r}; "
                "scores must be finite numbers"
            )
    return hits


def _rrf(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for hits in (dense, lexical):
        for rank, (doc, _) in enumerate(hits, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (RRF_K + rank)
    return fused


def _weighted_sum(
    dense: Mapping[str, float], lexical: Mapping[str, float], weight: float
) -> dict[str, float]:
    fused = {doc: weight * s for doc, s in dense.items()}
    for doc, s in lexical.items():
        fused[doc] = fused.get(doc, 0.0) + (1 - weight) * s
    return fused


def fuse(dense: Run, lexical: Run, method: str, weight: float | None = None) -> Run:
    """The fused run of two runs over the same queries (each query's hits best first)."""
    _check_queries(dense, lexical)
    if method == "rrf":  # ranks only: the scores are not read
        return {
            q: _ranked(_rrf(_checked(dense[q], q, "dense", False), _checked(lexical[q], q, "lexical", False)))
            for q in dense
        }
    if method == "weighted":
        if weight is None:
            raise ValueError("weighted fusion needs a weight (choose_weight on the val split)")
        if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and 0 <= weight <= 1):
            raise ValueError(f"fusion weight {weight!r}: expected a number from 0 to 1")
        return {
            q: _ranked(
                _weighted_sum(
                    _min_max(_checked(dense[q], q, "dense")),
                    _min_max(_checked(lexical[q], q, "lexical")),
                    weight,
                )
            )
            for q in dense
        }
    raise ValueError(f"fusion method {method!r}: expected one of {FUSIONS}")


def candidate_weights(step: float = WEIGHT_STEP) -> list[float]:
    """0, step, ..., 1 (rounded to the step's digits, as ranx's grid is)."""
    digits = len(f"{step}".rstrip("0").partition(".")[2])
    return [round(i * step, digits) for i in range(round(1 / step) + 1)]


def choose_weight(
    qrels: Mapping[str, Mapping[str, int]], dense: Run, lexical: Run, metric: str = "ndcg@10"
) -> float:
    """The dense weight in [0, 1] (steps of 0.1) that maximises the mean `metric` over these (val)
    queries; among equally good weights the largest (ranx's optimize_fusion keeps the last best too)."""
    _check_queries(dense, lexical)
    normed = {
        q: (_min_max(_checked(dense[q], q, "dense")), _min_max(_checked(lexical[q], q, "lexical")))
        for q in dense
    }
    depth = metric_depth(metric)  # only the top the metric sees needs ranking
    best_weight, best_score = 1.0, -1.0
    for weight in candidate_weights():
        fused = {q: _ranked(_weighted_sum(d, lex, weight), depth) for q, (d, lex) in normed.items()}
        score = float(per_query_scores(qrels, fused, [metric])[1][metric].mean())
        if score >= best_score:
            best_weight, best_score = weight, score
    return best_weight
