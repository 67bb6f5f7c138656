"""Training data: document splits, TSDAE pairs and mined triplets (held-out query sets: querysets.py).

Everything here is deterministic for a given seed. Splits are by near-duplicate cluster, so a second scan
of a test book can never sit in the training data. Query/passage prefixes are NOT baked into any dataset:
the training and evaluation code adds the prefixes of the model it runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl

from .corpus import scan_chunks, scan_documents
from .io import write_parquet
from .queries import MIN_PASSAGE_WORDS, MIN_QUERY_WORDS, clean_title, inverse_cloze, word_count

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
KINDS = ("inverse_cloze", "title", "neighbour")

# Anchors are scored against the corpus in slices of this many rows (bounds the score matrix).
MINE_SLICE = 256


# --- splits ---


def _stable_rank(key: str, seed: int) -> str:
    """A seeded order of clusters that does not depend on the order of rows in documents.parquet."""
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def assign_splits(documents: pl.DataFrame, val: float, test: float, seed: int) -> pl.DataFrame:
    """doc_id, cluster_id, split: whole clusters go to one split, sizes close to the ratios (in documents)."""
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

    counts = dict.fromkeys(SPLITS, 0)
    assignment = {}
    for cluster, size in zip(sizes["cluster_id"], sizes["len"], strict=True):
        # fill the split furthest below its target; ties go train, test, val
        split = max(("train", "test", "val"), key=lambda s: targets[s] - counts[s])
        assignment[cluster] = split
        counts[split] += size
    if counts["train"] == 0:
        raise ValueError(f"split_documents: {n_clusters} cluster(s) leave no document for training")
    log.info("splits (documents): %s; targets %s; %d clusters", counts, targets, n_clusters)
    return docs.with_columns(pl.col("cluster_id").replace_strict(assignment).alias("split"))


def split_documents(
    documents: str | os.PathLike, splits_out: str | os.PathLike, split: dict, seed: int
) -> None:
    """Read documents.parquet, write splits.parquet (doc_id, cluster_id, split)."""
    frame = scan_documents(documents).select("doc_id", "cluster_id").collect()
    splits = assign_splits(frame, val=split.get("val", 0.1), test=split.get("test", 0.2), seed=seed)
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


# --- TSDAE ---


def delete_words(text: str, ratio: float, rng: np.random.Generator) -> str:
    """TSDAE noise: drop each word with probability `ratio`, keeping at least one word."""
    words = text.split()
    if not words:
        return text
    kept = [w for w, r in zip(words, rng.random(len(words)), strict=True) if r >= ratio]
    if not kept:
        kept = [words[int(rng.integers(len(words)))]]
    return " ".join(kept)


def _sample(frame: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """Up to n rows, chosen by `rng`, kept in their original order."""
    if frame.height <= n:
        return frame
    rows = np.sort(rng.choice(frame.height, size=n, replace=False))
    return frame[rows.tolist()]


def tsdae_pairs(
    chunks: str | os.PathLike,
    splits: str | os.PathLike,
    pairs_out: str | os.PathLike,
    deletion_ratio: float,
    max_pairs: int,
    seed: int,
) -> None:
    """(noisy, text) pairs from train-split chunks: word deletion at `deletion_ratio`."""
    rng = np.random.default_rng(seed)
    train = chunks_in_split(scan_chunks(chunks).collect(), pl.read_parquet(splits), ["train"])
    train = _sample(train.filter(pl.col("text").str.strip_chars() != ""), max_pairs, rng)
    noisy = [delete_words(t, deletion_ratio, rng) for t in train["text"]]
    write_parquet(
        pl.DataFrame({"noisy": noisy, "text": train["text"]}, schema={"noisy": pl.Utf8, "text": pl.Utf8}),
        pairs_out,
    )
    log.info("tsdae: %d pairs, deletion ratio %.2f", len(noisy), deletion_ratio)


# --- pseudo-queries (shared by the triplets and the retrieval set) ---


def _titles(documents: pl.DataFrame) -> dict[str, str]:
    """doc_id -> title, for titles long enough to be a query (whitespace collapsed)."""
    titles = {}
    for doc_id, title in documents.select(pl.col("doc_id").cast(pl.Utf8), "title").iter_rows():
        clean = clean_title(title)
        if clean:
            titles[doc_id] = clean
    return titles


def pseudo_queries(chunks: pl.DataFrame, titles: dict[str, str], rng: np.random.Generator) -> pl.DataFrame:
    """anchor, positive, kind, doc_id, cluster_id, chunk_id for one split's chunks (sorted by doc, index).

    inverse_cloze: a sentence of a chunk -> the rest of it; title: the document title -> one of its chunks;
    neighbour: a chunk -> the next chunk, with the overlap they share cut off the positive.
    """
    rows: list[tuple] = []
    for (doc_id,), doc in chunks.group_by("doc_id", maintain_order=True):
        doc = doc.sort("chunk_index")
        cluster = doc["cluster_id"][0]
        records = doc.select("chunk_id", "chunk_index", "text", "char_start", "char_end").rows()
        for chunk_id, _, text, _, _ in records:
            pair = inverse_cloze(text, rng)
            if pair:
                rows.append((pair[0], pair[1], "inverse_cloze", doc_id, cluster, chunk_id))
        if doc_id in titles:
            chunk_id, _, text, _, _ = records[int(rng.integers(len(records)))]
            rows.append((titles[doc_id], text, "title", doc_id, cluster, chunk_id))
        for (cid, idx, text, _, end), (_, nidx, ntext, nstart, _) in zip(records, records[1:], strict=False):
            if nidx != idx + 1:
                continue
            positive = ntext[max(0, end - nstart) :].strip()
            if word_count(positive) >= MIN_PASSAGE_WORDS and word_count(text) >= MIN_QUERY_WORDS:
                rows.append((text, positive, "neighbour", doc_id, cluster, cid))
    schema = {k: pl.Utf8 for k in ("anchor", "positive", "kind", "doc_id", "cluster_id", "chunk_id")}
    return pl.DataFrame(rows, schema=schema, orient="row")


def balanced_take(frame: pl.DataFrame, n: int, rng: np.random.Generator, by: str = "kind") -> pl.DataFrame:
    """Up to n rows, round-robin over the values of `by` (each shuffled): no kind crowds out the rest."""
    order = np.empty(frame.height, dtype=np.int64)
    for value in sorted(frame[by].unique().to_list()):
        idx = np.flatnonzero((frame[by] == value).to_numpy())
        order[idx] = rng.permutation(len(idx))
    kind_pos = frame[by].replace_strict(
        {k: i for i, k in enumerate(KINDS)}, default=len(KINDS), return_dtype=pl.Int64
    )
    return (
        frame.with_columns(pl.Series("_turn", order), kind_pos.alias("_kind"))
        .sort("_turn", "_kind")
        .head(n)
        .drop("_turn", "_kind")
    )


# --- triplets ---


def mine_negatives(
    anchors: list[str],
    positives: list[str],
    groups: list[str],
    corpus: list[str],
    corpus_groups: list[set[str]],
    model,
    hard_negatives: dict[str, Any],
    query_prefix: str = "",
    passage_prefix: str = "",
    batch_size: int = 64,
) -> list[list[str]]:
    """Hard negatives for each (anchor, positive, group), hardest first, never from the anchor's group.

    The selection of sentence-transformers' `mine_hard_negatives` (sampling "top"): rank the corpus by cosine
    to the anchor, drop the positive and every candidate within `relative_margin` of the positive's score
    (likely false negatives), skip the `range_min` best of the top `range_max`, take `num_negatives`. One
    change: the anchor's own document/cluster is masked out before ranking. Filtering afterwards is not
    enough, because a book's other chunks fill the top of the ranking (tests/test_training_data.py checks
    that without groups this returns what `mine_hard_negatives` does).
    """
    import torch

    num_negatives = hard_negatives.get("num_negatives", 1)
    range_min = hard_negatives.get("range_min", 0)
    range_max = hard_negatives.get("range_max", 50)
    margin = hard_negatives.get("relative_margin")
    encode = {"batch_size": batch_size, "normalize_embeddings": True, "convert_to_tensor": True}
    queries = model.encode_query(anchors, prompt=query_prefix or None, **encode)
    docs = model.encode_document(corpus, prompt=passage_prefix or None, **encode)
    index = {text: j for j, text in enumerate(corpus)}  # every positive is in the corpus
    positive_idx = torch.tensor([index[p] for p in positives], device=docs.device)
    positive_scores = (queries * docs[positive_idx]).sum(-1)
    members: dict[str, list[int]] = {}
    for j, owners in enumerate(corpus_groups):
        for group in owners:
            members.setdefault(group, []).append(j)
    masks = {g: torch.tensor(js, device=docs.device) for g, js in members.items()}

    negatives: list[list[str]] = []
    k = min(range_max, len(corpus))
    for start in range(0, len(anchors), MINE_SLICE):
        stop = min(start + MINE_SLICE, len(anchors))
        scores = queries[start:stop] @ docs.T  # a slice at a time bounds the (queries x corpus) matrix
        for row, i in enumerate(range(start, stop)):
            scores[row, positive_idx[i]] = -torch.inf
            if groups[i] in masks:
                scores[row, masks[groups[i]]] = -torch.inf
        top, idx = scores.topk(k, dim=1)
        if margin is not None:
            pos = positive_scores[start:stop, None]
            top = top.masked_fill(top > pos - pos.abs() * margin, -torch.inf)
            top, order = top.sort(dim=1, descending=True, stable=True)
            idx = idx.gather(1, order)
        for row_scores, row_idx in zip(top[:, range_min:].tolist(), idx[:, range_min:].tolist(), strict=True):
            kept = [corpus[j] for score, j in zip(row_scores, row_idx, strict=True) if score != -np.inf]
            negatives.append(kept[:num_negatives])
    return negatives


def mine_triplets(
    chunks: str | os.PathLike,
    documents: str | os.PathLike,
    splits: str | os.PathLike,
    triplets_out: str | os.PathLike,
    miner: dict[str, Any],
    hard_negatives: dict[str, Any],
    max_pairs: int,
    seed: int,
    device: str = "auto",
    batch_size: int = 64,
) -> pl.DataFrame:
    """anchor, positive, negative, kind, doc_id from the train split, with mined hard negatives.

    A negative never comes from the anchor's own document or near-duplicate cluster. When the miner's window
    holds fewer candidates than num_negatives, the rest are random chunks from other clusters (logged).
    """
    from .config import ModelSpec
    from .models import load_sentence_transformer
    from .system import pick_device

    rng = np.random.default_rng(seed)
    train = chunks_in_split(scan_chunks(chunks).collect(), pl.read_parquet(splits), ["train"])
    if train["cluster_id"].n_unique() < 2:
        raise ValueError("mine_triplets: the train split needs documents from at least 2 clusters")
    titles = _titles(scan_documents(documents).select("doc_id", "title").collect())
    pairs = pseudo_queries(train, titles, rng).unique(
        ["anchor", "positive"], keep="first", maintain_order=True
    )
    pairs = balanced_take(pairs, max_pairs, rng)
    if pairs.is_empty():
        raise ValueError("mine_triplets: no pseudo-queries could be built from the train split")

    # 1. the candidate pool: train chunks (capped like the pairs) plus every positive
    pool = _sample(train, max_pairs, rng)
    clusters_of: dict[str, set[str]] = {}
    for text, cluster in [
        *pool.select("text", "cluster_id").rows(),
        *pairs.select("positive", "cluster_id").rows(),
    ]:
        clusters_of.setdefault(text, set()).add(cluster)
    corpus = list(clusters_of)

    # 2. mine with the configured model and its prefixes, the anchor's own cluster masked out
    spec = ModelSpec.from_config(miner)
    model = load_sentence_transformer(spec, device=pick_device(device))
    mined = mine_negatives(
        pairs["anchor"].to_list(),
        pairs["positive"].to_list(),
        pairs["cluster_id"].to_list(),
        corpus,
        [clusters_of[t] for t in corpus],
        model,
        hard_negatives,
        query_prefix=spec.query_prefix,
        passage_prefix=spec.passage_prefix,
        batch_size=batch_size,
    )

    # 3. where the window held fewer than num_negatives, top up with random chunks from other clusters
    num_negatives = hard_negatives.get("num_negatives", 1)
    train_texts = train["text"].to_list()
    train_clusters = train["cluster_id"].to_list()
    rows, topped_up, dropped = [], 0, 0
    for (anchor, positive, kind, doc_id, cluster, _), chosen in zip(pairs.iter_rows(), mined, strict=True):
        for _ in range(100 * num_negatives):  # rejection sampling; bounded for clusters that fill the split
            if len(chosen) >= num_negatives:
                break
            j = int(rng.integers(len(train_texts)))
            if train_clusters[j] != cluster and train_texts[j] not in chosen:
                chosen.append(train_texts[j])
                topped_up += 1
        dropped += not chosen
        rows.extend((anchor, positive, negative, kind, doc_id) for negative in chosen)
    schema = {k: pl.Utf8 for k in ("anchor", "positive", "negative", "kind", "doc_id")}
    triplets = pl.DataFrame(rows, schema=schema, orient="row")
    write_parquet(triplets, triplets_out)
    log.info(
        "triplets: %d from %d pairs %s; %d negatives random (window empty); %d pairs without negative",
        triplets.height,
        pairs.height,
        dict(pairs["kind"].value_counts().iter_rows()),
        topped_up,
        dropped,
    )
    return triplets
