"""Small vector helpers shared by every stage (numpy only: safe in torch-free deployments)."""

from __future__ import annotations

import numpy as np


def unit(x) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosines(a, b) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b`."""
    return np.sum(unit(a) * unit(b), axis=-1)
