"""Ranked runs: exact dense top-k, documents ranked by their best passage, runs as tables.

A run is what a retriever returned for each query: `{query_id: [(id, score), ...]}` best first, at most
TOP_K long. Dense and lexical retrievers produce the same shape, so metrics and fusion never care which
made it. Ties are broken by corpus position, so a rerun ranks identically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from archive_encoders.vectors import unit

TOP_K = 100  # the deepest cut-off of the metrics (recall@100, map@100) and the depth runs are kept to
RUN_SCHEMA = {"query_id": pl.String, "id": pl.String, "rank": pl.Int32, "score": pl.Float32}

Run = dict[str, list[tuple[str, float]]]


def top_k(queries: np.ndarray, corpus: np.ndarray, k: int = TOP_K, chunk_size: int | None = None):
    """Exact cosine top-k: (indices, scores), each (n_queries, min(k, n_corpus)), best first.

    Queries are scored in chunks that keep the similarity block near 64 MB whatever the corpus size.
    """
    return top_k_scores(_similarities(queries, corpus, chunk_size), k)


def _similarities(queries: np.ndarray, corpus: np.ndarray, chunk_size: int | None = None):
    q, c = unit(queries), unit(corpus)
    chunk_size = chunk_size or max(1, 16_000_000 // max(1, len(c)))
    for start in range(0, len(q), chunk_size):
        yield q[start : start + chunk_size] @ c.T


def top_k_scores(blocks, k: int = TOP_K):
    """Top-k of score blocks (rows: queries, columns: candidates), ties by column position."""
    indices, scores = [], []
    for sims in blocks:
        kk = min(k, sims.shape[1])
        if kk < sims.shape[1]:
            candidates = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            # argpartition picks arbitrarily among scores tied at the k-th place (duplicate passages):
            # rank those rows in full so the tie-break by position holds there too.
            kth = np.take_along_axis(sims, candidates, axis=1).min(axis=1, keepdims=True)
            for row in np.flatnonzero((sims >= kth).sum(axis=1) > kk):
                candidates[row] = np.lexsort((np.arange(sims.shape[1]), -sims[row]))[:kk]
        else:
            candidates = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
        cand_scores = np.take_along_axis(sims, candidates, axis=1)
        order = np.lexsort((candidates, -cand_scores), axis=1)  # score descending, then position
        indices.append(np.take_along_axis(candidates, order, axis=1))
        scores.append(np.take_along_axis(cand_scores, order, axis=1))
    if not indices:
        return np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(indices), np.concatenate(scores)


def max_by_group(sims: np.ndarray, group_starts: np.ndarray) -> np.ndarray:
    """Per row, the maximum over each group of consecutive columns (groups start at `group_starts`)."""
    return np.maximum.reduceat(sims, group_starts, axis=1)


class DocumentRanker:
    """Documents ranked by their best passage: `passages_doc_ids` says which document each passage is of."""

    def __init__(self, passage_doc_ids: Sequence[str]) -> None:
        doc_ids = np.asarray(passage_doc_ids, dtype=object)
        self.order = np.argsort(doc_ids, kind="stable")  # passages grouped by document
        sorted_ids = doc_ids[self.order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        self.starts = starts
        self.doc_ids = [str(d) for d in sorted_ids[starts]]

    def scores(self, passage_scores: np.ndarray) -> np.ndarray:
        """(rows, documents) best-passage scores from (rows, passages) scores."""
        return max_by_group(passage_scores[:, self.order], self.starts)


def dense_run(
    query_ids: Sequence[str],
    query_emb: np.ndarray,
    corpus_ids: Sequence[str],
    corpus_emb: np.ndarray,
    documents: DocumentRanker | None = None,
    k: int = TOP_K,
) -> Run:
    """Cosine top-k of passages, or (with `documents`) of documents by their best passage."""
    blocks = _similarities(query_emb, corpus_emb)
    ids = list(corpus_ids)
    if documents is not None:
        blocks = (documents.scores(b) for b in blocks)
        ids = documents.doc_ids
    indices, scores = top_k_scores(blocks, k)
    return {
        qid: [(ids[j], float(s)) for j, s in zip(row_idx, row_scores, strict=True)]
        for qid, row_idx, row_scores in zip(query_ids, indices, scores, strict=True)
    }


def run_to_frame(run: Mapping[str, Sequence[tuple[str, float]]]) -> pl.DataFrame:
    rows = [(qid, doc, rank, score) for qid, hits in run.items() for rank, (doc, score) in enumerate(hits, 1)]
    return pl.DataFrame(rows, schema=RUN_SCHEMA, orient="row")


def frame_to_run(frame: pl.DataFrame) -> Run:
    run: Run = {}
    for qid, doc, score in frame.sort("query_id", "rank").select("query_id", "id", "score").rows():
        run.setdefault(qid, []).append((doc, float(score)))
    return run


def ranked_scores(run: Mapping[str, Sequence[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    """A ranx-style run whose scores are (k - rank): ranx then ranks exactly as the run does (its own
    sort would reorder tied scores arbitrarily)."""
    return {
        qid: {doc: float(len(hits) - rank) for rank, (doc, _) in enumerate(hits)} for qid, hits in run.items()
    }
