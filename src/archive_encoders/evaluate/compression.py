"""What compressing the stored vectors costs in retrieval quality: NDCG@10 kept and bytes per vector.

One table per model x method (the evaluation job calls `compression_table` with the embeddings it has):

- float32: the reference (exact cosine), 100 % by definition;
- int8 and binary (sentence-transformers `quantize_embeddings`; int8 ranges calibrated on the train
  embeddings), searched in their own space (int8 dot product, Hamming distance), then, with rescoring,
  the top `rescore_multiplier` x k candidates re-ranked by the float query against the dequantized
  stored vectors: the float corpus is never needed, so the memory saving holds;
- fewer dimensions: PCA fitted on the train embeddings (or, for a Matryoshka-trained model, the first
  d coordinates), float32.

Queries stay float32 (one vector per search); only the stored corpus is compressed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archive_encoders.vectors import unit

log = logging.getLogger(__name__)

K = 10
METRIC = "ndcg@10"
DIMS = (256, 128, 64)
RESCORE_MULTIPLIER = 4
SCORE_BLOCK = 16_000_000  # similarity cells scored at once (~64 MB of float32)


def compression_table(
    query_embeddings: np.ndarray,
    corpus_embeddings: np.ndarray,
    train_embeddings: np.ndarray,
    qrels: Mapping[str, Mapping[str, int]],
    query_ids: Sequence[str],
    corpus_ids: Sequence[str],
    *,
    dims: Sequence[int] = DIMS,
    matryoshka: bool = False,
    rescore_multiplier: int = RESCORE_MULTIPLIER,
) -> list[dict[str, Any]]:
    """Rows {encoding, precision, dimension, rescored, bytes_per_vector, compression, ndcg@10,
    ndcg@10_kept_pct}, float32 first. Embeddings are row-aligned with `query_ids` / `corpus_ids`;
    queries without a relevant passage in `qrels` are not scored (as in evaluation)."""
    from sentence_transformers.util import quantize_embeddings

    queries, corpus, train = unit(query_embeddings), unit(corpus_embeddings), unit(train_embeddings)
    if len(queries) != len(query_ids) or len(corpus) != len(corpus_ids):
        raise ValueError("compression_table: embeddings and ids must have the same number of rows")
    if len(train) < 2:
        raise ValueError("compression_table: need at least 2 train embeddings (int8 ranges, PCA)")
    judged = {q: dict(qrels[q]) for q in query_ids if any(g > 0 for g in qrels.get(q, {}).values())}
    if not judged:
        raise ValueError("compression_table: no query has a relevant passage in qrels")
    keep = [i for i, q in enumerate(query_ids) if q in judged]
    queries, query_ids = queries[keep], [query_ids[i] for i in keep]
    dim = corpus.shape[1]

    def score(ranked: np.ndarray) -> float:
        return ndcg_at_10(judged, query_ids, corpus_ids, ranked)

    rows = [_row("float32", "float32", dim, False, 4 * dim, score(rank(queries @ corpus.T)))]

    ranges = np.stack([train.min(axis=0), train.max(axis=0)])
    stored = quantize_embeddings(corpus, "int8", ranges=ranges)
    query_i8 = quantize_embeddings(queries, "int8", ranges=ranges)
    first = rank(_blocked(query_i8.astype(np.int32), stored.astype(np.int32).T), K * rescore_multiplier)
    rows.append(_row("int8", "int8", dim, False, dim, score(first[:, :K])))
    rows.append(
        _row("int8", "int8", dim, True, dim, score(rescore(queries, first, dequantize(stored, ranges))))
    )

    packed = quantize_embeddings(corpus, "ubinary")
    query_bits = quantize_embeddings(queries, "ubinary")
    first = rank(-hamming(query_bits, packed), K * rescore_multiplier)
    signs = np.unpackbits(packed, axis=-1)[:, :dim].astype(np.float32) * 2 - 1
    rows.append(_row("binary", "binary", dim, False, packed.shape[1], score(first[:, :K])))
    rows.append(_row("binary", "binary", dim, True, packed.shape[1], score(rescore(queries, first, signs))))

    for d in sorted((d for d in dims if d < dim), reverse=True):
        if matryoshka:
            name, q, c = f"truncate-{d}", unit(queries[:, :d]), unit(corpus[:, :d])
        else:
            mean, components = pca_fit(train, d)
            if components.shape[0] < d:  # fewer train vectors than dimensions: say so, do not pretend
                log.warning("pca-%d: only %d train embeddings, %d components", d, len(train), len(components))
                continue
            name = f"pca-{d}"
            q, c = unit((queries - mean) @ components.T), unit((corpus - mean) @ components.T)
        rows.append(_row(name, "float32", d, False, 4 * d, score(rank(q @ c.T))))

    reference = rows[0][METRIC]
    for row in rows:
        row[f"{METRIC}_kept_pct"] = None if not reference else round(100.0 * row[METRIC] / reference, 3)
        row["compression"] = round(rows[0]["bytes_per_vector"] / row["bytes_per_vector"], 2)
    return rows


def _row(encoding: str, precision: str, dim: int, rescored: bool, nbytes: int, ndcg: float) -> dict:
    return {
        "encoding": encoding + (" + rescore" if rescored else ""),
        "precision": precision,
        "dimension": int(dim),
        "rescored": rescored,
        "bytes_per_vector": int(nbytes),
        METRIC: ndcg,
    }


def rank(scores: np.ndarray, k: int = K) -> np.ndarray:
    """Indices of the top `k` columns per row, best first; ties broken by column (corpus) order."""
    k = min(k, scores.shape[1])
    columns = np.arange(scores.shape[1])
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    for row in range(scores.shape[0]):
        out[row] = np.lexsort((columns, -scores[row]))[:k]
    return out


def rescore(queries: np.ndarray, candidates: np.ndarray, stored: np.ndarray, k: int = K) -> np.ndarray:
    """Re-rank each query's candidates by float query x stored (dequantized) vector; the top k."""
    scores = np.einsum("qd,qkd->qk", queries, stored[candidates])
    order = np.lexsort((candidates, -scores), axis=1)[:, :k]
    return np.take_along_axis(candidates, order, axis=1)


def dequantize(values: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """The centre of each int8 bucket of `quantize_embeddings` (buckets of (max - min) / 255 from min)."""
    starts = ranges[0].astype(np.float32)
    steps = (ranges[1] - ranges[0]).astype(np.float32) / 255
    steps = np.where(steps == 0, 1, steps)
    return (values.astype(np.float32) + 128 + 0.5) * steps + starts


def hamming(a_bits: np.ndarray, b_bits: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of packed bit arrays (uint8), (len(a), len(b))."""
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.int32)
    out = np.empty((len(a_bits), len(b_bits)), dtype=np.int32)
    for i, row in enumerate(a_bits):
        out[i] = popcount[np.bitwise_xor(row[None, :], b_bits)].sum(axis=1)
    return out


def pca_fit(train: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components (dims, width)) of the train embeddings; dims is capped by what the data holds."""
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    return mean, vt[: min(dims, vt.shape[0])]


def ndcg_at_10(qrels, query_ids: Sequence[str], corpus_ids: Sequence[str], ranked: np.ndarray) -> float:
    """Mean NDCG@10 (archive_encoders.evaluate.metrics, i.e. ranx) of a ranking given as corpus indices."""
    from archive_encoders.evaluate.metrics import per_query_scores

    run = {
        q: {corpus_ids[j]: float(ranked.shape[1] - r) for r, j in enumerate(row)}
        for q, row in zip(query_ids, ranked, strict=True)
    }
    # two metrics: ranx 0.3.21 fails on a list of one with per-query results (KeyError in evaluate)
    _, scores = per_query_scores({q: qrels[q] for q in query_ids}, run, [METRIC, "recall@10"])
    return float(scores[METRIC].mean())


def _blocked(a: np.ndarray, b_t: np.ndarray) -> np.ndarray:
    rows = max(1, SCORE_BLOCK // max(1, b_t.shape[1]))
    return np.concatenate([a[i : i + rows] @ b_t for i in range(0, len(a), rows)])
