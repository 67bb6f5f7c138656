"""Seeded samples: draws kept in order (datasets, query sets, validation, teachers), a gate sample and a
disjoint calibration sample, and a query-length head of a passage. The corpus readers are in
corpus/manifest.py."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence


def sample_in_order(items, n: int, rng):
    """Up to n of `items` (a list or a polars DataFrame), drawn by the numpy Generator `rng`, kept in
    their original order; all of them, with no draw, when there are no more than n."""
    import numpy as np

    if len(items) <= n:
        return items
    rows = np.sort(rng.choice(len(items), size=n, replace=False)).tolist()
    return [items[i] for i in rows] if isinstance(items, list) else items[rows]


def sample_split(texts: Sequence[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded sample of `n` texts for a fidelity gate, and a disjoint one (if there are enough) to
    calibrate on."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    gate = [texts[i] for i in order[:n]]
    rest = [texts[i] for i in order[n : 2 * n]]
    return gate, rest or gate


def query_like(text: str, words: int = 12) -> str:
    """A short query-length text from a chunk: its first sentence, at most `words` words."""
    first = re.split(r"(?<=[.!?…])\s+", text.strip(), maxsplit=1)[0]
    return " ".join(first.split()[:words])
