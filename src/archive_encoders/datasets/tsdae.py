"""TSDAE pairs: train-split chunks and their noisy copies (word deletion, ratio 0.6 in the paper)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import polars as pl

from archive_encoders.corpus.manifest import count_chunks, read_chunks
from archive_encoders.datasets.meta import dataset_meta
from archive_encoders.datasets.splits import chunks_in_split
from archive_encoders.io import write_json, write_parquet
from archive_encoders.sampling import sample_in_order

log = logging.getLogger(__name__)


def delete_words(text: str, ratio: float, rng: np.random.Generator) -> str:
    """TSDAE noise: drop each word with probability `ratio`, keeping at least one word."""
    words = text.split()
    if not words:
        return text
    kept = [w for w, r in zip(words, rng.random(len(words)), strict=True) if r >= ratio]
    if not kept:
        kept = [words[int(rng.integers(len(words)))]]
    return " ".join(kept)


def tsdae_pairs(
    corpus: str | os.PathLike,
    splits: str | os.PathLike,
    pairs_out: str | os.PathLike,
    deletion_ratio: float,
    max_pairs: int,
    seed: int,
    meta_out: str | os.PathLike | None = None,
) -> None:
    """(noisy, text) pairs from train-split chunks: word deletion at `deletion_ratio`."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    train = chunks_in_split(read_chunks(corpus), pl.read_parquet(splits), ["train"])
    train = train.filter(pl.col("text").str.strip_chars() != "")
    source_chunks = train.height
    train = sample_in_order(train, max_pairs, rng)
    noisy = [delete_words(t, deletion_ratio, rng) for t in train["text"]]
    write_parquet(
        pl.DataFrame({"noisy": noisy, "text": train["text"]}, schema={"noisy": pl.Utf8, "text": pl.Utf8}),
        pairs_out,
    )
    if meta_out:
        meta = dataset_meta("tsdae_pairs", len(noisy), source_chunks, count_chunks(corpus), started)
        write_json(meta_out, {**meta, "rows_available": source_chunks})
    log.info("tsdae: %d pairs, deletion ratio %.2f", len(noisy), deletion_ratio)
