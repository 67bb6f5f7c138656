"""Property tests of the fusion functions on hostile runs: duplicate ids, NaN and infinite scores, empty
runs, weights at and past 0 and 1. The property: a valid ranking (unique ids, finite scores, best first,
at most TOP_K deep) or a ValueError that says what is wrong."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive_encoders.evaluate.fusion import choose_weight, fuse
from archive_encoders.evaluate.ranking import TOP_K

IDS = st.sampled_from(["d1", "d2", "d3", "d4", "", "д5", "d1 ", "\x00"])
SCORES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6),
    st.sampled_from([0.0, -0.0, 1.0, float("nan")]),
)
HITS = st.lists(st.tuples(IDS, SCORES), max_size=8)
QUERIES = st.sampled_from(["q1", "q2", "q3"])
RUNS = st.dictionaries(QUERIES, HITS, max_size=3)
WEIGHTS = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 0.5, -0.1, 1.1]), st.floats(allow_nan=True))


def clean(hits, scores_count: bool = True) -> bool:
    ids = [d for d, _ in hits]
    return len(ids) == len(set(ids)) and (not scores_count or all(math.isfinite(s) for _, s in hits))


def assert_valid_ranking(run, queries):
    assert set(run) == set(queries)
    for hits in run.values():
        ids = [d for d, _ in hits]
        scores = [s for _, s in hits]
        assert len(ids) == len(set(ids)) and len(ids) <= TOP_K
        assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
        assert scores == sorted(scores, reverse=True)


@given(dense=RUNS, lexical=RUNS, method=st.sampled_from(["rrf", "weighted", "wsum", ""]), weight=WEIGHTS)
def test_fuse_gives_a_valid_ranking_or_a_clear_error(dense, lexical, method, weight):
    lexical = {q: lexical.get(q, []) for q in dense} if dense.keys() >= lexical.keys() else lexical
    valid_input = (
        set(dense) == set(lexical)
        and all(clean(h, method != "rrf") for run in (dense, lexical) for h in run.values())  # rrf: ranks
        and method in ("rrf", "weighted")
        and (method == "rrf" or (weight is not None and 0.0 <= weight <= 1.0))
    )
    if not valid_input:
        with pytest.raises(ValueError, match="fusion|weight|score|twice"):
            fuse(dense, lexical, method, weight)
        return
    fused = fuse(dense, lexical, method, weight)
    assert_valid_ranking(fused, dense)
    for q in dense:  # every fused id came from one of the runs
        assert {d for d, _ in fused[q]} <= {d for d, _ in dense[q] + lexical[q]}


@given(dense=RUNS, lexical=RUNS, relevant=st.dictionaries(QUERIES, st.dictionaries(IDS, st.integers(0, 3))))
def test_choose_weight_gives_a_weight_in_range_or_a_clear_error(dense, lexical, relevant):
    lexical = {q: lexical.get(q, []) for q in dense}
    valid_input = all(clean(h) for run in (dense, lexical) for h in run.values())
    if not valid_input:
        with pytest.raises(ValueError, match="score|twice"):
            choose_weight(relevant, dense, lexical)
        return
    try:
        weight = choose_weight(relevant, dense, lexical)
    except ValueError as err:  # no query to choose on is the one other refusal
        assert "query" in str(err) or "qrels" in str(err)
        return
    assert 0.0 <= weight <= 1.0
