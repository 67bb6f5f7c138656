"""The group bootstrap: hand-computable cases, pairing, grouping, seeding, non-inferiority."""

from __future__ import annotations

import numpy as np
import pytest

from archive_encoders.evaluate.stats import (
    Interval,
    group_bootstrap,
    interval,
    non_inferior,
    paired_difference,
)


def test_constant_values_give_a_degenerate_interval():
    mean, low, high = group_bootstrap(np.full((1, 30), 0.4), [str(i % 6) for i in range(30)], 200, 0)
    assert mean[0] == pytest.approx(0.4) and low[0] == pytest.approx(0.4) and high[0] == pytest.approx(0.4)


def test_two_groups_hand_computed_support():
    """Groups A = [1, 1] and B = [0]: a resample draws two groups with replacement, so the mean over
    the drawn queries can only be 1 (AA), 2/3 (AB or BA) or 0 (BB), with probabilities 1/4, 1/2, 1/4."""
    values = np.array([[1.0, 1.0, 0.0]])
    groups = ["A", "A", "B"]
    mean, low, high = group_bootstrap(values, groups, 4000, seed=1, confidence=0.4)
    assert mean[0] == pytest.approx(2 / 3)
    # the 30th and 70th percentiles of {0: 1/4, 2/3: 1/2, 1: 1/4} are both 2/3
    assert low[0] == pytest.approx(2 / 3) and high[0] == pytest.approx(2 / 3)
    _, low95, high95 = group_bootstrap(values, groups, 4000, seed=1)
    assert low95[0] == 0.0 and high95[0] == 1.0


def test_grouping_widens_the_interval_of_correlated_queries():
    rng = np.random.default_rng(0)
    per_group = rng.random(20)
    values = np.repeat(per_group, 10)  # 10 identical queries per source document
    by_query = interval(values, [str(i) for i in range(200)], 2000, 0)
    by_document = interval(values, [str(i // 10) for i in range(200)], 2000, 0)
    assert by_query.value == pytest.approx(by_document.value)
    assert (by_document.high - by_document.low) > 2.5 * (by_query.high - by_query.low)


def test_paired_difference_sees_a_consistent_small_gain():
    rng = np.random.default_rng(1)
    base = rng.random(300)
    better = base + 0.02  # every query gains 0.02: unpaired intervals overlap, the paired one does not
    groups = [str(i // 3) for i in range(300)]
    diff = paired_difference(better, base, groups, 1000, 2)
    assert diff.value == pytest.approx(0.02) and diff.low == pytest.approx(0.02)
    a, b = interval(better, groups, 1000, 2), interval(base, groups, 1000, 2)
    assert a.low < b.high  # the unpaired intervals overlap


def test_seeded_and_refuses_misaligned_values():
    values, groups = np.arange(10.0), [str(i) for i in range(10)]
    assert interval(values, groups, 300, 5) == interval(values, groups, 300, 5)
    assert interval(values, groups, 300, 5) != interval(values, groups, 300, 6)
    with pytest.raises(ValueError, match="groups"):
        group_bootstrap(values[None, :], groups[:5], 10, 0)
    with pytest.raises(ValueError, match="shape"):
        paired_difference(values, values[:5], groups, 10, 0)


def test_one_group_has_no_interval():
    result = interval([0.2, 0.4], ["only", "only"], 100, 0)
    assert result.value == pytest.approx(0.3) and result.low is None and result.high is None


def test_non_inferiority_uses_the_low_end():
    assert non_inferior(Interval(-0.005, -0.009, 0.001), margin=0.01)
    assert not non_inferior(Interval(-0.005, -0.012, 0.001), margin=0.01)
    assert non_inferior(Interval(0.0, None, None), margin=0.01)  # no interval: the point estimate decides
    assert not non_inferior(Interval(-0.02, None, None), margin=0.01)
