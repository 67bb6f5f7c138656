"""Document-level splits: train, val and test by cluster of duplicate scans, never a passage apart
from its book; `datasets.split.test_items` pins items to test."""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence

import polars as pl

from archive_encoders.corpus.manifest import read_text_chunks, scan_documents
from archive_encoders.io import write_parquet

log = logging.getLogger(__name__)


SPLITS = ("train", "val", "test")


def _stable_rank(key: str, seed: int) -> str:
    """A seeded order of clusters that does not depend on the order of rows in documents.parquet."""
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def pinned_to_test(doc_ids: Iterable[str], patterns: Sequence[str]) -> set[str]:
    """The doc_ids matching one of the globs of `datasets.split.test_items`."""
    return {d for d in doc_ids if any(fnmatch.fnmatchcase(d, p) for p in patterns)}


def assign_splits(
    documents: pl.DataFrame, val: float, test: float, seed: int, test_items: Sequence[str] = ()
) -> pl.DataFrame:
    """doc_id, cluster_id, split: whole clusters go to one split, sizes close to the ratios (in documents).

    Clusters holding a document that matches `test_items` (globs over doc_id) go to test first, so a
    benchmark can hold out a whole source (another volume, another collection); the ratios then fill the
    rest, test counting what was pinned (pinned beyond the test ratio comes out of train's share)."""
    docs = documents.select(
        pl.col("doc_id").cast(pl.Utf8),
        # a document without a cluster is its own cluster
        pl.coalesce(pl.col("cluster_id").cast(pl.Utf8), pl.col("doc_id").cast(pl.Utf8)).alias("cluster_id"),
    ).unique("doc_id", keep="first", maintain_order=True)
    if docs.is_empty():
        raise ValueError("split_documents: no documents to split")
    sizes = docs.group_by("cluster_id").len()
    sizes = sizes.with_columns(
        pl.col("cluster_id").map_elements(lambda c: _stable_rank(c, seed), return_dtype=pl.Utf8).alias("rank")
    ).sort("rank")

    n_docs, n_clusters = docs.height, sizes.height
    targets = {}
    for name, ratio in (("test", test), ("val", val)):
        want = round(n_docs * ratio)
        # a small corpus still gets one held-out document when there are clusters to spare
        targets[name] = max(want, 1) if ratio > 0 and n_clusters >= 3 else want
    targets["train"] = n_docs - targets["test"] - targets["val"]

    pinned_docs = pinned_to_test(docs["doc_id"], test_items)
    if test_items and not pinned_docs:
        raise ValueError(f"datasets.split.test_items: no document matches {list(test_items)}")
    pinned = set(docs.filter(pl.col("doc_id").is_in(list(pinned_docs)))["cluster_id"])
    counts = dict.fromkeys(SPLITS, 0)
    assignment = {}
    for cluster, size in zip(sizes["cluster_id"], sizes["len"], strict=True):
        if cluster in pinned:
            assignment[cluster] = "test"
            counts["test"] += size
    # what the pins add beyond the test ratio comes out of train, so val keeps its share
    targets["test"] = max(targets["test"], counts["test"])
    targets["train"] = n_docs - targets["test"] - targets["val"]
    for cluster, size in zip(sizes["cluster_id"], sizes["len"], strict=True):
        if cluster in pinned:
            continue
        # fill the split furthest below its target; ties go train, test, val
        split = max(("train", "test", "val"), key=lambda s: targets[s] - counts[s])
        assignment[cluster] = split
        counts[split] += size
    if counts["train"] == 0:
        raise ValueError(f"split_documents: {n_clusters} cluster(s) leave no document for training")
    log.info(
        "splits (documents): %s; targets %s; %d clusters, %d pinned to test",
        counts,
        targets,
        n_clusters,
        len(pinned),
    )
    return docs.with_columns(pl.col("cluster_id").replace_strict(assignment).alias("split"))


def split_documents(
    documents: str | os.PathLike, splits_out: str | os.PathLike, split: dict, seed: int
) -> None:
    """Read documents.parquet, write splits.parquet (doc_id, cluster_id, split)."""
    from archive_encoders.config import with_defaults

    split = with_defaults("datasets.split", split)
    frame = scan_documents(documents).select("doc_id", "cluster_id").collect()
    splits = assign_splits(frame, split["val"], split["test"], seed, split["test_items"])
    write_parquet(splits, splits_out)


def chunks_in_split(chunks: pl.DataFrame, splits: pl.DataFrame, names: Iterable[str]) -> pl.DataFrame:
    """Chunks of the documents in the given splits, with their cluster_id and split, in chunk order."""
    chosen = splits.filter(pl.col("split").is_in(list(names))).select(
        pl.col("doc_id").cast(pl.Utf8), "cluster_id", "split"
    )
    return (
        chunks.with_columns(pl.col("doc_id").cast(pl.Utf8))
        .join(chosen, on="doc_id", how="inner")
        .sort("doc_id", "chunk_index")
    )


def train_sample(train: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """Up to n train chunks (chunks_in_split rows), seeded, in order: the chunks negatives are mined
    from and a distillation teacher embeds. One sample for both, so a teacher that is the miner's encoder
    finds every one of them in the miner's embeddings (datasets/reuse.py)."""
    import numpy as np

    from archive_encoders.sampling import sample_in_order

    return sample_in_order(train, n, np.random.default_rng([seed, TRAIN_SAMPLE_STREAM]))


TRAIN = "train"
TRAIN_SAMPLE_STREAM = 1  # train_sample's random stream, apart from the one each caller draws with `seed`


def _train_docs(splits_path: str | os.PathLike) -> pl.DataFrame:
    splits = pl.read_parquet(splits_path, columns=["doc_id", "split"])
    train_docs = splits.filter(pl.col("split") == TRAIN).select("doc_id")
    if train_docs.is_empty():
        raise ValueError(f"{splits_path}: no document in the {TRAIN!r} split to calibrate on")
    return train_docs


def train_chunk_texts(chunks_path: str | os.PathLike, splits_path: str | os.PathLike) -> list[str]:
    """Texts of the chunks whose document is in the train split (calibration never sees val/test)."""
    train_docs = _train_docs(splits_path)
    chunks = read_text_chunks(chunks_path, ["doc_id", "text"])
    return chunks.join(train_docs, on="doc_id", how="semi")["text"].to_list()


def train_chunk_sample(
    chunks_path: str | os.PathLike, splits_path: str | os.PathLike, n: int, seed: int
) -> tuple[list[str], list[str]]:
    """`sample_split(train_chunk_texts(...), n, seed)`, the same two samples, holding the text of only the
    (at most 2n) chunks it picks: the ids are listed first, the picked texts read by id."""
    from archive_encoders.corpus.manifest import scan_chunks
    from archive_encoders.sampling import sample_split

    train_docs = _train_docs(splits_path)["doc_id"].to_list()
    train = scan_chunks(chunks_path).filter(pl.col("doc_id").is_in(train_docs))
    # the text filter runs inside the Parquet scan; only the ids are kept
    has_text = pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != "")
    ids = train.filter(has_text).select("chunk_id").collect()["chunk_id"].to_list()
    if len(set(ids)) != len(ids):  # a hand-made table with repeated ids: read the texts themselves
        return sample_split(train_chunk_texts(chunks_path, splits_path), n, seed)
    gate_ids, rest_ids = sample_split(ids, n, seed)
    picked = set(gate_ids) | set(rest_ids)
    rows = train.filter(pl.col("chunk_id").is_in(list(picked))).select("chunk_id", "text").collect()
    text_of = dict(rows.iter_rows())
    return [text_of[i] for i in gate_ids], [text_of[i] for i in rest_ids]
