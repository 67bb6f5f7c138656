"""Quality of one model variant: exact top-100 retrieval on the held-out set, STS, anisotropy.

Every variant is scored on the same queries, corpus and qrels with the same code, so differences
between torch, onnx-fp32 and onnx-int8 come from the encoder alone. Everything runs on the CPU: the
ONNX variants are CPU deployments, and scoring torch on the same device keeps their comparison exact.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .config import with_defaults
from .encoders import Encoder, load_encoder
from .io import write_json
from .metrics import mean_random_pair_cosine, retrieval_metrics, sts_spearman
from .vectors import unit

log = logging.getLogger(__name__)

TOP_K = 100  # the deepest cut-off of the metrics (recall@100, map@100)


# --- retrieval ---


def top_k(queries: np.ndarray, corpus: np.ndarray, k: int = TOP_K, chunk_size: int | None = None):
    """Exact cosine top-k: (indices, scores), each (n_queries, min(k, n_corpus)), best first.

    Ties are broken by corpus position so a rerun ranks identically. Queries are scored in chunks that
    keep the similarity block near 64 MB whatever the corpus size.
    """
    q = unit(queries)
    c = unit(corpus)
    k = min(k, len(c))
    chunk_size = chunk_size or max(1, 16_000_000 // max(1, len(c)))
    indices = np.empty((len(q), k), dtype=np.int64)
    scores = np.empty((len(q), k), dtype=np.float32)
    for start in range(0, len(q), chunk_size):
        sims = q[start : start + chunk_size] @ c.T
        if k < sims.shape[1]:
            candidates = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            # argpartition picks arbitrarily among scores tied at the k-th place (duplicate passages):
            # rank those rows in full so the tie-break by corpus position holds there too.
            kth = np.take_along_axis(sims, candidates, axis=1).min(axis=1, keepdims=True)
            for row in np.flatnonzero((sims >= kth).sum(axis=1) > k):
                candidates[row] = np.lexsort((np.arange(sims.shape[1]), -sims[row]))[:k]
        else:
            candidates = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
        cand_scores = np.take_along_axis(sims, candidates, axis=1)
        # lexsort: last key is primary -> score descending, then corpus index ascending
        order = np.lexsort((candidates, -cand_scores), axis=1)
        indices[start : start + len(sims)] = np.take_along_axis(candidates, order, axis=1)
        scores[start : start + len(sims)] = np.take_along_axis(cand_scores, order, axis=1)
    return indices, scores


def build_run(query_ids: Sequence[str], corpus_ids: Sequence[str], indices: np.ndarray) -> dict:
    """A ranx-style run. Scores are k - rank, not cosines, so ranx ranks exactly as `top_k` did (its own
    sort would reorder tied cosines arbitrarily)."""
    k = indices.shape[1]
    return {
        qid: {corpus_ids[j]: float(k - rank) for rank, j in enumerate(row)}
        for qid, row in zip(query_ids, indices, strict=True)
    }


def read_qrels(qrels: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{query_id: {corpus_id: grade}} for graded integer relevance; grade <= 0 means not relevant."""
    grades = qrels["score"].cast(pl.Float64)
    if not (grades == grades.round()).all():
        raise ValueError("qrels.score: relevance grades must be integers (graded: 0, 1, 2, ...)")
    out: dict[str, dict[str, int]] = {}
    for qid, cid, grade in zip(
        qrels["query_id"].cast(pl.String),
        qrels["corpus_id"].cast(pl.String),
        grades.cast(pl.Int64),
        strict=True,
    ):
        out.setdefault(qid, {})[cid] = int(grade)
    return out


def score_retrieval(
    encoder: Encoder,
    queries: pl.DataFrame,
    corpus: pl.DataFrame,
    qrels: pl.DataFrame,
    batch_size: int,
    bootstrap_samples: int,
    seed: int,
) -> tuple[dict, np.ndarray, int]:
    """Encode, retrieve and score; returns (metrics with CIs, corpus embeddings, number of queries)."""
    judged = read_qrels(qrels)
    # Only queries with a relevant passage can be scored (NDCG and recall are undefined otherwise).
    relevant = {qid for qid, docs in judged.items() if any(g > 0 for g in docs.values())}
    if not relevant:
        raise ValueError("qrels: no query has a relevant passage (grade >= 1); nothing to score")
    queries = queries.with_columns(pl.col("query_id").cast(pl.String)).filter(
        pl.col("query_id").is_in(relevant)
    )
    if queries["query_id"].is_duplicated().any():
        raise ValueError("queries.query_id: ids must be unique")
    unknown = relevant - set(queries["query_id"])
    if unknown:
        raise ValueError(
            f"qrels name {len(unknown)} query id(s) missing from queries, e.g. {sorted(unknown)[:3]}"
        )
    dropped = len(judged) - len(relevant)
    if dropped:
        log.warning("%d judged queries have no relevant passage and are not scored", dropped)
    corpus_ids = corpus["corpus_id"].cast(pl.String).to_list()
    if len(set(corpus_ids)) != len(corpus_ids):
        raise ValueError("corpus.corpus_id: ids must be unique")

    start = time.perf_counter()
    corpus_emb = encoder.encode_passages(corpus["text"].to_list(), batch_size=batch_size)
    query_emb = encoder.encode_queries(queries["text"].to_list(), batch_size=batch_size)
    log.info(
        "encoded %d passages and %d queries in %.1f s",
        len(corpus_ids),
        len(queries),
        time.perf_counter() - start,
    )

    query_ids = queries["query_id"].to_list()
    indices, _ = top_k(query_emb, corpus_emb, TOP_K)
    run = build_run(query_ids, corpus_ids, indices)
    metrics = retrieval_metrics({q: judged[q] for q in query_ids}, run, bootstrap_samples, seed)
    return metrics, corpus_emb, len(query_ids)


# --- STS ---


def read_sts(path: str | os.PathLike, max_score: float = 5.0) -> pl.DataFrame:
    """Pairs with gold scores as (s1, s2, score in [0, 1]).

    CSV: three columns s1,s2,score; a header row is optional (detected by a non-numeric score field);
    quoted fields, CRLF line ends and a UTF-8 BOM are accepted. Parquet: columns s1, s2, score.
    """
    path = Path(path)
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame = pl.read_parquet(path)
        missing = {"s1", "s2", "score"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: Parquet STS set lacks column(s) {sorted(missing)}")
        frame = frame.select(
            pl.col("s1").cast(pl.String), pl.col("s2").cast(pl.String), pl.col("score").cast(pl.Float64)
        )
    else:
        frame = _read_sts_csv(path)
    if frame.is_empty():
        raise ValueError(f"{path}: no STS pairs")
    if frame["score"].is_null().any() or frame["s1"].is_null().any() or frame["s2"].is_null().any():
        raise ValueError(f"{path}: empty s1, s2 or score values")
    low, high = frame["score"].min(), frame["score"].max()
    if low < 0 or high > max_score:  # a wrong max_score would silently rescale; say so instead
        raise ValueError(f"{path}: gold scores span [{low}, {high}], outside [0, max_score={max_score}]")
    return frame.with_columns(pl.col("score") / max_score)


def _read_sts_csv(path: Path) -> pl.DataFrame:
    with open(path, encoding="utf-8-sig", newline="") as fh:  # newline="" lets csv handle CRLF and quotes
        rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    if rows and not _is_number(rows[0][-1]):
        header = [c.strip().lower() for c in rows[0]]
        if header != ["s1", "s2", "score"]:
            raise ValueError(f"{path}: header must be s1,s2,score (got {rows[0]})")
        rows = rows[1:]
    for line, row in enumerate(rows, start=1):
        if len(row) != 3 or not _is_number(row[2]):
            raise ValueError(f"{path}: data row {line} is not s1,s2,score: {row}")
    return pl.DataFrame(
        {"s1": [r[0] for r in rows], "s2": [r[1] for r in rows], "score": [float(r[2]) for r in rows]},
        schema={"s1": pl.String, "s2": pl.String, "score": pl.Float64},
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def score_sts(encoder: Encoder, sts_sets: Iterable[Mapping[str, Any]], batch_size: int) -> dict:
    """{name: {"spearman", "n"}}. STS is symmetric, so both sides get the query prefix (e5's convention)."""
    out = {}
    for entry in sts_sets:
        entry = with_defaults("evaluate.sts.*", entry)
        pairs = read_sts(entry["path"], float(entry["max_score"]))
        name = entry["name"]
        emb1 = encoder.encode_queries(pairs["s1"].to_list(), batch_size=batch_size)
        emb2 = encoder.encode_queries(pairs["s2"].to_list(), batch_size=batch_size)
        out[name] = {"spearman": sts_spearman(emb1, emb2, pairs["score"].to_numpy()), "n": pairs.height}
        log.info("STS %s: spearman %s on %d pairs", name, out[name]["spearman"], pairs.height)
    return out


# --- the rule's entry point ---


def _key(result: Mapping[str, Any]) -> tuple[str, str, str]:
    return result["model"], result["method"], result["variant"]


def evaluate_encoder(
    encoder: Encoder,
    queries: pl.DataFrame,
    corpus: pl.DataFrame,
    qrels: pl.DataFrame,
    sts_sets: Iterable[Mapping[str, Any]],
    evaluate_settings: Mapping[str, Any],
    seed: int,
) -> dict:
    """The eval JSON's measurement part (retrieval, sts, diagnostics, sizes) for any encoder."""
    evaluate_settings = with_defaults("evaluate", evaluate_settings)
    batch_size = int(evaluate_settings["batch_size"])
    retrieval, corpus_emb, n_queries = score_retrieval(
        encoder,
        queries,
        corpus,
        qrels,
        batch_size,
        int(evaluate_settings["bootstrap_samples"]),
        seed,
    )
    return {
        "n_queries": n_queries,
        "n_corpus": corpus.height,
        "retrieval": retrieval,
        "sts": score_sts(encoder, sts_sets, batch_size),
        "diagnostics": {"mean_random_pair_cosine": mean_random_pair_cosine(corpus_emb, seed)},
    }


def evaluate(
    model_path: str | os.PathLike,
    variant: str,
    queries: str | os.PathLike,
    corpus: str | os.PathLike,
    qrels: str | os.PathLike,
    sts_sets: Iterable[Mapping[str, Any]],
    out_path: str | os.PathLike,
    model_spec: Mapping[str, Any],
    evaluate_settings: Mapping[str, Any],
    seed: int,
    method: str,
    threads: int | None = None,
) -> dict:
    """Evaluate one variant of `method` and write its eval JSON (paths.EVAL) atomically.

    sts_sets: entries of config evaluate.sts ({name, path, max_score}).
    """
    encoder = load_encoder(variant, model_path, model_spec, threads)
    result = {
        "model": model_spec["name"],
        "method": method,
        "variant": variant,
        **evaluate_encoder(
            encoder,
            pl.read_parquet(queries),
            pl.read_parquet(corpus),
            pl.read_parquet(qrels),
            sts_sets,
            evaluate_settings,
            seed,
        ),
    }
    write_json(out_path, result)
    ndcg = result["retrieval"]["ndcg@10"]
    ci = "no CI" if ndcg["ci_low"] is None else f"95 % CI [{ndcg['ci_low']:.4f}, {ndcg['ci_high']:.4f}]"
    log.info(
        "%s/%s/%s: ndcg@10 %.4f, %s, on %d queries", *_key(result), ndcg["value"], ci, result["n_queries"]
    )
    return result
