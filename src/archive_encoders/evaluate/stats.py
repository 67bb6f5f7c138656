"""Confidence intervals that respect how the queries were drawn: a bootstrap over groups of queries.

Queries made from one book are not independent (they share its vocabulary, its OCR, its topic), so
every interval here resamples *groups* (the source document of each query) with replacement and takes
the mean over all queries of the drawn groups (a cluster bootstrap). Comparing two rows on the same
queries uses the per-query differences with the same draws: a paired test, far tighter than comparing
two unpaired intervals. Percentile intervals, seeded: the same inputs give the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
MAX_DRAW_CELLS = 4_000_000  # resamples x groups per block: bounds memory on large sets


@dataclass(frozen=True)
class Interval:
    value: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}


def _group_index(groups: Sequence[str]) -> tuple[np.ndarray, int]:
    _, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    return index, int(index.max()) + 1 if len(index) else 0


def group_bootstrap(
    values: np.ndarray, groups: Sequence[str], samples: int, seed: int, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) per row of `values` (rows x queries), resampling the queries' groups.

    Every row is resampled with the same group draws (rows of one call are paired). With fewer than two
    groups there is nothing to resample: the bounds are NaN.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    mean = values.mean(axis=1) if values.shape[1] else np.full(values.shape[0], np.nan)
    index, n_groups = _group_index(groups)
    if values.shape[1] != len(index):
        raise ValueError(f"{values.shape[1]} values but {len(index)} groups")
    if n_groups < 2:
        nan = np.full(values.shape[0], np.nan)
        return mean, nan, nan.copy()
    sums = np.zeros((values.shape[0], n_groups))
    np.add.at(sums.T, index, values.T)
    counts = np.bincount(index, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    stats = []
    block = max(1, MAX_DRAW_CELLS // n_groups)
    for start in range(0, samples, block):
        size = min(block, samples - start)
        draws = rng.integers(0, n_groups, size=(size, n_groups)) + n_groups * np.arange(size)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n_groups).reshape(size, n_groups)
        stats.append((weights @ sums.T) / (weights @ counts)[:, None])  # (size, rows)
    stats = np.concatenate(stats)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail], axis=0)
    return mean, low, high


def interval(values: Sequence[float], groups: Sequence[str], samples: int, seed: int) -> Interval:
    mean, low, high = group_bootstrap(np.asarray(values)[None, :], groups, samples, seed)
    return Interval(float(mean[0]), _finite(low[0]), _finite(high[0]))


def paired_difference(
    a: Sequence[float], b: Sequence[float], groups: Sequence[str], samples: int, seed: int
) -> Interval:
    """Mean of a - b over the same queries, with its group-bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} vs {b.shape}")
    return interval(a - b, groups, samples, seed)


def non_inferior(difference: Interval, margin: float) -> bool:
    """The row is no worse than the reference by more than `margin`: the interval's low end clears it.

    With no interval (too few groups), only a point estimate within the margin counts."""
    low = difference.low if difference.low is not None else difference.value
    return bool(low > -margin)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
