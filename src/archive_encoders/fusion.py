"""Hybrid retrieval: a dense run fused with BM25's, by reciprocal rank or by a weight chosen on val.

- rrf: reciprocal rank fusion (ranx `fuse`, method rrf, k=60): needs no tuning, so nothing can leak;
- weighted: min-max-normalised scores, w * dense + (1 - w) * bm25, with w chosen by ranx's
  `optimize_fusion` on the VAL split's query sets pooled (never on test), then applied to every test set.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence

from .ranking import TOP_K, Run

RRF_K = 60
WEIGHT_STEP = 0.1
FUSIONS = ("rrf", "weighted")


def _ranx_run(run: Mapping[str, Sequence[tuple[str, float]]], name: str):
    import ranx

    # ranx needs at least one document per query; an empty BM25 result becomes one that matches nothing
    return ranx.Run({q: dict(hits) or {"\x00none": 0.0} for q, hits in run.items()}, name=name)


def _from_ranx(run, k: int = TOP_K) -> Run:
    out: Run = {}
    for qid, docs in run.to_dict().items():
        ranked = sorted(((d, s) for d, s in docs.items() if d != "\x00none"), key=lambda x: (-x[1], x[0]))
        out[qid] = [(d, float(s)) for d, s in ranked[:k]]
    return out


@contextlib.contextmanager
def _quiet():
    from numba.core.errors import NumbaTypeSafetyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)  # ranx hashes ids to uint64; harmless
        yield


def fuse(dense: Run, lexical: Run, method: str, weight: float | None = None) -> Run:
    """The fused run of two runs over the same queries."""
    import ranx

    if set(dense) != set(lexical):
        raise ValueError("fusion: the two runs must hold the same queries")
    with _quiet():
        runs = [_ranx_run(dense, "dense"), _ranx_run(lexical, "bm25")]
        if method == "rrf":
            fused = ranx.fuse(runs, method="rrf", params={"k": RRF_K})
        elif method == "weighted":
            if weight is None:
                raise ValueError("weighted fusion needs a weight (choose_weight on the val split)")
            fused = ranx.fuse(runs, norm="min-max", method="wsum", params={"weights": [weight, 1 - weight]})
        else:
            raise ValueError(f"fusion method {method!r}: expected one of {FUSIONS}")
    return _from_ranx(fused)


def choose_weight(
    qrels: Mapping[str, Mapping[str, int]], dense: Run, lexical: Run, metric: str = "ndcg@10"
) -> float:
    """The dense weight in [0, 1] (steps of 0.1) that maximises `metric` over these (val) queries."""
    import ranx

    with _quiet():
        best = ranx.optimize_fusion(
            ranx.Qrels({q: dict(d) for q, d in qrels.items()}),
            [_ranx_run(dense, "dense"), _ranx_run(lexical, "bm25")],
            norm="min-max",
            method="wsum",
            metric=metric,
            step=WEIGHT_STEP,
            show_progress=False,
        )
    return round(float(best["weights"][0]), 3)
