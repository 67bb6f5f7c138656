"""Triplets: pseudo-query pairs from the train split with mined hard negatives (splits: splits.py, TSDAE
pairs: tsdae.py, held-out query sets: querysets.py).

Everything here is deterministic for a given seed. Splits are by near-duplicate cluster, so a second scan
of a test book can never sit in the training data. Query/passage prefixes are NOT baked into any dataset:
the training and evaluation code adds the prefixes of the model it runs.

Each dataset is written with a metadata JSON beside it (`<name>.json`, paths.DATASET_META): how many rows,
from how many train chunks, how long it took on what hardware, and for the triplets how many negatives
the miner found per query kind. Training copies it into train_metrics.json, so the cost of a method
includes the data it needed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.corpus.manifest import count_chunks, read_chunks, scan_documents
from archive_encoders.datasets import generators as gen
from archive_encoders.datasets.meta import dataset_meta
from archive_encoders.datasets.splits import chunks_in_split, train_sample
from archive_encoders.io import write_json, write_parquet

log = logging.getLogger(__name__)

# Training-pair kinds (datasets.query_kinds weighs them): the four query generators of queries.py, plus
# neighbour (a chunk finds the next one).
KINDS = ("inverse_cloze", "keyword", "question", "title", "neighbour")
TRIPLET_SCHEMA = {
    "anchor": pl.String,
    "positive": pl.String,
    "negative": pl.String,
    "kind": pl.String,
    "doc_id": pl.String,
    "cluster_id": pl.String,
    "chunk_index": pl.Int64,  # of the positive's chunk; null for a document-level query (title)
}

# Anchors are scored against the corpus in slices of this many rows (bounds the score matrix).
MINE_SLICE = 256


# --- splits ---


# --- TSDAE ---


# --- training pairs (the generators are queries.py's, shared with the held-out query sets) ---


def _documents_info(documents: pl.DataFrame) -> dict[str, tuple[str, str | None]]:
    """doc_id -> (clean title, creator) for documents whose title is long enough to be a query."""
    info = {}
    for doc_id, title, creator in documents.select(pl.col("doc_id").cast(pl.Utf8), "title", "creator").rows():
        clean = gen.clean_title(title)
        if clean:
            info[doc_id] = (clean, creator)
    return info


PAIR_SCHEMA = {
    "anchor": pl.String,
    "positive": pl.String,
    "kind": pl.String,
    "doc_id": pl.String,
    "cluster_id": pl.String,
    "chunk_index": pl.Int64,
}


def pseudo_queries(
    chunks: pl.DataFrame,
    documents: dict[str, tuple[str, str | None]],
    rng: np.random.Generator,
    keywords: gen.KeywordQueries,
) -> pl.DataFrame:
    """anchor, positive, kind, doc_id, cluster_id, chunk_index for one split's chunks (by doc, index).

    One pair per generator and chunk where it applies: inverse_cloze (a sentence -> the rest of the chunk),
    keyword and question (-> the chunk), neighbour (a chunk -> the next one, their shared overlap cut off
    the positive); and per document one title query (title, sometimes with the creator) -> one chunk.
    """
    rows: list[tuple] = []
    for (doc_id,), doc in chunks.group_by("doc_id", maintain_order=True):
        doc = doc.sort("chunk_index")
        cluster = doc["cluster_id"][0]
        records = doc.select("chunk_index", "text", "char_start", "char_end").rows()
        for idx, text, _, _ in records:
            pair = gen.inverse_cloze(text, rng)
            if pair:
                rows.append((pair[0], pair[1], "inverse_cloze", doc_id, cluster, idx))
            keyword = keywords.make(text, rng)
            if keyword:
                rows.append((keyword[0], text, "keyword", doc_id, cluster, idx))
            asked = gen.question(text, keywords, rng)
            if asked:
                rows.append((asked, text, "question", doc_id, cluster, idx))
        if doc_id in documents:
            title, creator = documents[doc_id]
            _, text, _, _ = records[int(rng.integers(len(records)))]
            rows.append((gen.title_query(title, creator, rng), text, "title", doc_id, cluster, None))
        for (idx, text, _, end), (nidx, ntext, nstart, _) in zip(records, records[1:], strict=False):
            if nidx != idx + 1:
                continue
            positive = ntext[max(0, end - nstart) :].strip()
            if (
                gen.word_count(positive) >= gen.MIN_PASSAGE_WORDS
                and gen.word_count(text) >= gen.MIN_QUERY_WORDS
            ):
                rows.append((text, positive, "neighbour", doc_id, cluster, nidx))
    return pl.DataFrame(rows, schema=PAIR_SCHEMA, orient="row")


def kind_quotas(available: Mapping[str, int], n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Rows to take per kind: `n` shared in proportion to the weights, a kind's unused share (it has
    fewer rows than its quota) going to the others in proportion (water-filling); integers summing to
    min(n, rows of the weighted kinds), largest remainders first."""
    open_kinds = {k for k, w in weights.items() if w > 0 and available.get(k, 0) > 0}
    quotas = dict.fromkeys(weights, 0.0)
    left = float(min(n, sum(available.get(k, 0) for k in open_kinds)))
    while open_kinds and left > 1e-9:
        total = sum(weights[k] for k in open_kinds)
        share = {k: left * weights[k] / total for k in open_kinds}
        full = {k for k in open_kinds if quotas[k] + share[k] >= available[k]}
        if not full:
            for k in open_kinds:
                quotas[k] += share[k]
            break
        for k in full:
            left -= available[k] - quotas[k]
            quotas[k] = float(available[k])
        open_kinds -= full
    counts = {k: int(q) for k, q in quotas.items()}
    short = round(sum(quotas.values())) - sum(counts.values())
    for k in sorted(quotas, key=lambda k: (counts[k] - quotas[k], KINDS.index(k) if k in KINDS else 0))[
        :short
    ]:
        counts[k] += 1
    return counts


def weighted_take(
    frame: pl.DataFrame, n: int, weights: Mapping[str, float], rng: np.random.Generator
) -> pl.DataFrame:
    """Up to n rows mixed by `weights` over the `kind` column (kind_quotas), in frame order."""
    available = dict(frame["kind"].value_counts().iter_rows())
    quotas = kind_quotas(available, n, weights)
    keep = []
    for kind, quota in quotas.items():
        rows = np.flatnonzero((frame["kind"] == kind).to_numpy())
        if quota:
            keep.extend(rng.choice(rows, size=quota, replace=False).tolist())
    return frame[sorted(keep)]


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
    document_level: list[bool] | None = None,
) -> list[list[str]]:
    """Hard negatives for each (anchor, positive, group) by a sentence-transformers `model` (each text
    with its role's prefix): mine_encoded on its embeddings."""
    encode = {"batch_size": batch_size, "convert_to_numpy": True, "show_progress_bar": False}
    return mine_encoded(
        model.encode([query_prefix + a for a in anchors], **encode),
        model.encode([passage_prefix + t for t in corpus], **encode),
        positives,
        groups,
        corpus,
        corpus_groups,
        hard_negatives,
        document_level,
        device=str(model.device),
    )


def mine_encoded(
    queries: np.ndarray,
    docs: np.ndarray,
    positives: list[str],
    groups: list[str],
    corpus: list[str],
    corpus_groups: list[set[str]],
    hard_negatives: dict[str, Any],
    document_level: list[bool] | None = None,
    device: str = "cpu",
) -> list[list[str]]:
    """Hard negatives for each anchor (a row of `queries`) with its positive and group, hardest first,
    never from the anchor's group; `docs` embeds `corpus` (neither need be normalised).

    The candidates are the corpus ranked by cosine to the anchor, BELOW the positive: the positive, the
    anchor's own document/cluster and every candidate within `relative_margin` of the positive's score
    (likely false negatives) are masked before ranking; then the `range_min` best are skipped and the next
    `num_negatives` of the `range_max` deepest taken. Masking before ranking is what makes this work on
    real data: for most inverse-cloze anchors dozens of chunks outscore the positive, and
    sentence-transformers' `mine_hard_negatives` (which filters its top `range_max` afterwards) then
    finds nothing. With no margin the two select the same negatives (tests/test_training_data.py).

    `document_level` anchors (title queries) skip the margin: their positive is one chunk of a book that is
    relevant as a whole, the whole book (its cluster) is masked already, and the chunk they were paired
    with says nothing about how close another book may come.
    """
    import torch

    def unit(matrix: np.ndarray):
        rows = torch.from_numpy(np.asarray(matrix, dtype=np.float32)).to(device)
        return torch.nn.functional.normalize(rows, dim=-1)

    queries, docs = unit(queries), unit(docs)
    margin = hard_negatives.get("relative_margin")
    range_min, num_negatives = hard_negatives["range_min"], hard_negatives["num_negatives"]
    guarded = torch.tensor([not d for d in document_level or [False] * len(queries)], device=docs.device)
    index = {text: j for j, text in enumerate(corpus)}  # every positive is in the corpus
    positive_idx = torch.tensor([index[p] for p in positives], device=docs.device)
    positive_scores = (queries * docs[positive_idx]).sum(-1)
    members: dict[str, list[int]] = {}
    for j, owners in enumerate(corpus_groups):
        for group in owners:
            members.setdefault(group, []).append(j)
    masks = {g: torch.tensor(js, device=docs.device) for g, js in members.items()}

    negatives: list[list[str]] = []
    k = min(hard_negatives["range_max"], len(corpus))
    for start in range(0, len(queries), MINE_SLICE):
        stop = min(start + MINE_SLICE, len(queries))
        scores = queries[start:stop] @ docs.T  # a slice at a time bounds the (queries x corpus) matrix
        if margin is not None:  # the false-negative guard, before ranking
            pos = positive_scores[start:stop, None]
            too_close = (scores > pos - pos.abs() * margin) & guarded[start:stop, None]
            scores = scores.masked_fill(too_close, -torch.inf)
        for row, i in enumerate(range(start, stop)):
            scores[row, positive_idx[i]] = -torch.inf
            if groups[i] in masks:
                scores[row, masks[groups[i]]] = -torch.inf
        top, idx = scores.topk(k, dim=1)
        for row_scores, row_idx in zip(top[:, range_min:].tolist(), idx[:, range_min:].tolist(), strict=True):
            kept = [corpus[j] for score, j in zip(row_scores, row_idx, strict=True) if score != -np.inf]
            negatives.append(kept[:num_negatives])
    return negatives


def top_up_randomly(
    pairs: pl.DataFrame, mined: list[list[str]], train: pl.DataFrame, num_negatives: int, rng
) -> tuple[pl.DataFrame, dict[str, dict[str, int]]]:
    """Triplets, with random chunks of other clusters where the miner found fewer than num_negatives;
    and per kind: pairs, mined and random negatives, pairs left without any negative."""
    texts, clusters = train["text"].to_list(), train["cluster_id"].to_list()
    stats = {k: {"pairs": 0, "mined": 0, "random": 0, "without_negative": 0} for k in pairs["kind"].unique()}
    rows = []
    for (anchor, positive, kind, doc_id, cluster, index), chosen in zip(
        pairs.iter_rows(), mined, strict=True
    ):
        chosen = list(chosen)
        stats[kind]["pairs"] += 1
        stats[kind]["mined"] += len(chosen)
        for _ in range(100 * num_negatives):  # rejection sampling; bounded for clusters that fill the split
            if len(chosen) >= num_negatives:
                break
            j = int(rng.integers(len(texts)))
            if clusters[j] != cluster and texts[j] not in chosen:
                chosen.append(texts[j])
                stats[kind]["random"] += 1
        stats[kind]["without_negative"] += not chosen
        rows.extend((anchor, positive, negative, kind, doc_id, cluster, index) for negative in chosen)
    return pl.DataFrame(rows, schema=TRIPLET_SCHEMA, orient="row"), stats


def random_shares(stats: dict[str, dict[str, int]]) -> dict[str, float]:
    """Share of each kind's negatives that are random (the miner's window held too few)."""
    return {k: s["random"] / max(1, s["mined"] + s["random"]) for k, s in sorted(stats.items())}


def check_random_share(shares: Mapping[str, float], limit: float) -> None:
    """Fail when the mining degenerated: too many negatives of some kind are random chunks."""
    over = {k: round(v, 3) for k, v in shares.items() if v > limit}
    if over:
        raise ValueError(
            f"mine_triplets: the share of random negatives {over} is above "
            f"datasets.hard_negatives.max_random_share ({limit}): the miner found too few candidates below "
            "the positive. Raise datasets.hard_negatives.range_max or lower range_min / relative_margin "
            "(or raise max_pairs, which widens the candidate pool); raise max_random_share to accept it."
        )


def training_pairs(
    train: pl.DataFrame,
    documents: pl.DataFrame,
    query_kinds: Mapping[str, float],
    languages: Sequence[str],
    max_pairs: int,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, int]:
    """(pairs mixed by the kind weights, number of distinct pairs there were to choose from)."""
    from archive_encoders.datasets.text_analysis import Analyzer

    keywords = gen.KeywordQueries(train["text"].to_list(), train["doc_id"].to_list(), Analyzer(languages))
    pairs = pseudo_queries(train, _documents_info(documents), rng, keywords).unique(
        ["anchor", "positive"], keep="first", maintain_order=True
    )
    available = pairs.height
    pairs = weighted_take(pairs, max_pairs, query_kinds, rng)
    if pairs.is_empty():
        raise ValueError("mine_triplets: no pseudo-queries could be built from the train split")
    return pairs, available


@dataclass(frozen=True)
class MiningSettings:
    """What mining reads of the config (rule mine_triplets' params, by name); unset keys take the
    schema's defaults (datasets.hard_negatives, datasets.query_kinds, clean.languages, seed)."""

    miner: Mapping[str, Any]
    hard_negatives: Mapping[str, Any] | None = None
    query_kinds: Mapping[str, float] | None = None
    languages: Sequence[str] | None = None
    max_pairs: int | None = None
    seed: int | None = None
    device: str = "auto"
    batch_size: int = 64

    def __post_init__(self) -> None:
        from archive_encoders.config import defaults, with_defaults

        filled = {
            "hard_negatives": with_defaults("datasets.hard_negatives", self.hard_negatives),
            "query_kinds": with_defaults("datasets.query_kinds", self.query_kinds),
            "languages": list(self.languages or defaults("clean")["languages"]),
            "max_pairs": defaults("datasets")["max_pairs"] if self.max_pairs is None else self.max_pairs,
            "seed": defaults("seed") if self.seed is None else self.seed,
        }
        for key, value in filled.items():
            object.__setattr__(self, key, value)


def mine_triplets(
    corpus: str | os.PathLike,
    splits: str | os.PathLike,
    triplets_out: str | os.PathLike,
    settings: MiningSettings,
    meta_out: str | os.PathLike | None = None,
    embeddings_out: str | os.PathLike | None = None,
) -> pl.DataFrame:
    """Triplets (TRIPLET_SCHEMA) from the train split: pseudo-queries mixed by `query_kinds` (config
    datasets.query_kinds), each with mined hard negatives (mine_negatives).

    A negative never comes from the anchor's own document or near-duplicate cluster. Where the miner's
    window held fewer than num_negatives, the rest are random chunks from other clusters; their share per
    kind goes to the log and `meta_out`, and above hard_negatives.max_random_share the job fails.
    """
    started = time.perf_counter()
    negatives = settings.hard_negatives
    rng = np.random.default_rng(settings.seed)
    train = chunks_in_split(read_chunks(corpus), pl.read_parquet(splits), ["train"])
    if train["cluster_id"].n_unique() < 2:
        raise ValueError("mine_triplets: the train split needs documents from at least 2 clusters")
    docs = scan_documents(corpus).select("doc_id", "title", "creator").collect()
    # 1. pseudo-query pairs, mixed by kind
    pairs, available = training_pairs(
        train, docs, settings.query_kinds, settings.languages, settings.max_pairs, rng
    )
    # 2. the candidate pool: train chunks (capped like the pairs) plus every positive
    pool, clusters_of = candidate_pool(train, pairs, settings.max_pairs, settings.seed)
    # 3. mine with the configured model and its prefixes, the anchor's own cluster masked out
    mined, mining = mine_with(settings, pairs, pool, clusters_of, embeddings_out)
    # 4. where the window held fewer than num_negatives, top up with random chunks from other clusters
    triplets, stats = top_up_randomly(pairs, mined, train, negatives["num_negatives"], rng)
    shares = random_shares(stats)
    for kind, share in shares.items():
        log.info(
            "triplets %s: %s, %.1f %% of negatives random (window empty)", kind, stats[kind], 100 * share
        )
    check_random_share(shares, negatives["max_random_share"])
    write_parquet(triplets, triplets_out)
    if meta_out:
        meta = dataset_meta("triplets", triplets.height, train.height, count_chunks(corpus), started)
        meta |= {
            "pairs": pairs.height,
            "pairs_available": available,  # distinct pseudo-query pairs the train split gave, before the cap
            "rows_available": available * negatives["num_negatives"],
            "kinds": {k: {**stats[k], "random_share": round(shares[k], 4)} for k in sorted(stats)},
            "random_share": round(sum(s["random"] for s in stats.values()) / max(1, triplets.height), 4),
            "max_random_share": negatives["max_random_share"],
            **mining,
        }
        write_json(meta_out, meta)
    log.info(
        "triplets: %d from %d pairs (of %d) %s, mined in %.1f s",
        triplets.height,
        pairs.height,
        available,
        dict(pairs["kind"].value_counts().sort("kind").iter_rows()),
        mining["encode_s"],
    )
    return triplets


def candidate_pool(
    train: pl.DataFrame, pairs: pl.DataFrame, max_pairs: int, seed: int
) -> tuple[list[str], dict[str, set[str]]]:
    """The distinct texts negatives are mined from (the seeded sample of train chunks a distillation
    teacher embeds too, and every positive) and the clusters each text occurs in."""
    sampled = train_sample(train, max_pairs, seed)
    clusters_of: dict[str, set[str]] = {}
    for text, cluster in [
        *sampled.select("text", "cluster_id").rows(),
        *pairs.select("positive", "cluster_id").rows(),
    ]:
        clusters_of.setdefault(text, set()).add(cluster)
    return list(clusters_of), clusters_of


def mine_with(
    settings: MiningSettings,
    pairs: pl.DataFrame,
    pool: list[str],
    clusters_of: dict[str, set[str]],
    embeddings_out: str | os.PathLike | None = None,
) -> tuple[list, dict[str, Any]]:
    """mine_encoded with the miner model on the configured device; returns the mined negatives and what
    the mining cost (miner, encode_s, hardware) for the dataset JSON. What it encoded (the queries and the
    pool) goes to `embeddings_out` for a teacher that is the same encoder (datasets/reuse.py)."""
    from archive_encoders.config import ModelSpec
    from archive_encoders.datasets.reuse import LazyModel, write_encoded
    from archive_encoders.system import hardware, pick_device

    spec = ModelSpec.from_config(settings.miner)
    device = pick_device(settings.device)
    encode = LazyModel(spec, device, settings.batch_size)
    queries = list(dict.fromkeys(pairs["anchor"]))
    query_emb = encode("query", queries)
    pool_emb = encode("passage", pool)
    if embeddings_out:
        write_encoded(
            embeddings_out,
            spec,
            {"query": queries, "passage": pool},
            {"query": query_emb, "passage": pool_emb},
        )
    row = {q: i for i, q in enumerate(queries)}
    mined = mine_encoded(
        query_emb[[row[a] for a in pairs["anchor"]]],
        pool_emb,
        pairs["positive"].to_list(),
        pairs["cluster_id"].to_list(),
        pool,
        [clusters_of[t] for t in pool],
        settings.hard_negatives,
        document_level=pairs["chunk_index"].is_null().to_list(),
        device=device,
    )
    cost = {
        "encoded_texts": encode.encoded,
        "encode_s": round(encode.encode_s, 3),
        "hardware": hardware(device),
    }
    return mined, {"miner": spec.name, **cost}
