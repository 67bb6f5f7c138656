"""Cohen's kappa and judged@k coverage against values computed by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest
from support.judging_helpers import SYSTEMS, pool_frame

from archive_encoders.judging.agreement import cohen_kappa, judged_at_k
from archive_encoders.judging.store import JUDGMENT_SCHEMA


def frame(rows) -> pl.DataFrame:
    return pl.DataFrame([(*r, "t") for r in rows], schema=JUDGMENT_SCHEMA, orient="row")


def test_cohen_kappa_by_hand():
    # ten passages both graded; ann 0,0,1,1,2,2,2,0,1,2 and bob 0,1,1,1,2,2,1,0,0,2: 7 agree, p_o = 0.7.
    # ann's grades 0/1/2: 3/3/4 of 10, bob's 3/4/3: p_e = (3*3 + 3*4 + 4*3) / 100 = 0.33
    # kappa = (0.7 - 0.33) / (1 - 0.33) = 37/67
    ann = [0, 0, 1, 1, 2, 2, 2, 0, 1, 2]
    bob = [0, 1, 1, 1, 2, 2, 1, 0, 0, 2]
    rows = [("q1", f"p{i}", "ann", g) for i, g in enumerate(ann)]
    rows += [("q1", f"p{i}", "bob", g) for i, g in enumerate(bob)]
    rows += [("q2", "p1", "ann", 2), ("q1", "p1", "cyd", 0)]  # judged by one of the two only: not a pair
    result = cohen_kappa(frame(rows), "ann", "bob")
    assert result.n_pairs == 10
    assert result.observed == pytest.approx(0.7)
    assert result.expected == pytest.approx(0.33)
    assert result.kappa == pytest.approx(37 / 67)


def test_cohen_kappa_edges():
    same = frame(
        [("q1", "p1", "ann", 2), ("q1", "p1", "bob", 2), ("q1", "p2", "ann", 0), ("q1", "p2", "bob", 0)]
    )
    assert cohen_kappa(same, "ann", "bob").kappa == pytest.approx(1.0)
    one_grade = frame([("q1", "p1", "ann", 1), ("q1", "p1", "bob", 1)])
    assert math.isnan(cohen_kappa(one_grade, "ann", "bob").kappa)  # chance agreement is 1: undefined
    with pytest.raises(ValueError, match="no \\(query, passage\\) judged in common"):
        cohen_kappa(frame([("q1", "p1", "ann", 1)]), "ann", "bob")


def test_judged_at_k_by_hand():
    judged = frame(
        [("q1", "p1", "ann", 2), ("q1", "p2", "bob", 1), ("q2", "p6", "ann", 0), ("q2", "p7", "ann", 2)]
        + [("q2", "p8", "ann", 0), ("q3", "p9", "ann", 1), ("q3", "p1", "x", 1)]
    )
    # top 3 judged per query: bm25 q1 2/3 (p1 p2 of p1 p2 p3), q2 3/3, q3 2/3 (p9, p1 of p3 p9 p1) -> 7/9
    # dense q1 2/3 (p2 p1 of p2 p4 p1), q2 1, q3 1/2 (p9 of p9 p3; it returned two) -> 13/18
    # hybrid q1 2/3 (p2 p1 of p2 p1 p5), q2 1, q3 1/3 (p9 of p3 p9 p5) -> 2/3
    table = judged_at_k(pool_frame(), judged)
    got = dict(zip(table["system"], table["judged_at_k"], strict=True))
    assert got == pytest.approx({SYSTEMS[0]: 7 / 9, SYSTEMS[1]: 13 / 18, SYSTEMS[2]: 2 / 3})
    assert not table["flagged"].any()
    assert table["n_queries"].to_list() == [3, 3, 3]
    # top 1: bm25 p1 p6 p3 -> 2/3, dense p2 p6 p9 -> 1, hybrid p2 p7 p3 -> 2/3; floor 0.7 flags two
    table = judged_at_k(pool_frame(), judged, k=1, floor=0.7)
    assert dict(zip(table["system"], table["judged_at_k"], strict=True)) == pytest.approx(
        {SYSTEMS[0]: 2 / 3, SYSTEMS[1]: 1.0, SYSTEMS[2]: 2 / 3}
    )
    assert dict(zip(table["system"], table["flagged"], strict=True)) == {
        SYSTEMS[0]: True,
        SYSTEMS[1]: False,
        SYSTEMS[2]: True,
    }


def test_a_mostly_unjudged_system_is_flagged_at_the_default_floor():
    table = judged_at_k(pool_frame(), frame([("q1", "p1", "ann", 2)]))
    assert table["flagged"].all()  # bm25 (1/3 + 0 + 0) / 3 = 1/9 and the rest below 0.5
    assert table.filter(system=SYSTEMS[0])["judged_at_k"][0] == pytest.approx(1 / 9)
