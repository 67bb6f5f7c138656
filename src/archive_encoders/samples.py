"""Samples: seeded draws kept in order (datasets, query sets, validation, teachers), and reading corpus
chunks for the serving stages: calibration samples (train split only) and the index.

`read_chunks` is the one place these stages read the chunk table (through `corpus.scan_chunks`, which
reads the manifest), dropping empty passages.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence

TRAIN = "train"


def sample_in_order(items, n: int, rng):
    """Up to n of `items` (a list or a polars DataFrame), drawn by the numpy Generator `rng`, kept in
    their original order; all of them, with no draw, when there are no more than n."""
    import numpy as np

    if len(items) <= n:
        return items
    rows = np.sort(rng.choice(len(items), size=n, replace=False)).tolist()
    return [items[i] for i in rows] if isinstance(items, list) else items[rows]


def read_chunks(chunks_path: str | os.PathLike, columns: Sequence[str] = ("chunk_id", "doc_id", "text")):
    """The chunk table (a polars DataFrame with `columns`), rows with empty text dropped."""
    import polars as pl

    from .corpus import scan_chunks

    frame = scan_chunks(chunks_path).select(list(columns)).collect()
    if "text" in frame.columns:
        frame = frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    return frame


def train_chunk_texts(chunks_path: str | os.PathLike, splits_path: str | os.PathLike) -> list[str]:
    """Texts of the chunks whose document is in the train split (calibration never sees val/test)."""
    import polars as pl

    splits = pl.read_parquet(splits_path, columns=["doc_id", "split"])
    train_docs = splits.filter(pl.col("split") == TRAIN).select("doc_id")
    if train_docs.is_empty():
        raise ValueError(f"{splits_path}: no document in the {TRAIN!r} split to calibrate on")
    chunks = read_chunks(chunks_path, ["doc_id", "text"])
    return chunks.join(train_docs, on="doc_id", how="semi")["text"].to_list()


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
