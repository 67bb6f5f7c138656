"""Small vector helpers shared by every stage (numpy only: safe in torch-free deployments)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit(x) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosines(a, b) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b`."""
    return np.sum(unit(a) * unit(b), axis=-1)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get average ranks); None where it is undefined (fewer than two
    values, or one side constant), so a JSON never holds a NaN."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    value = spearmanr(a, b).statistic
    return float(value) if np.isfinite(value) else None
