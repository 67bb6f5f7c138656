"""The teachers' cached outputs, each in a job of its own (so a cluster can give it a GPU):

- teacher_embeddings (distill): a bi-encoder's embeddings of train chunks (role `passage`, embedded with
  the teacher's passage prefix) and of the triplets' pseudo-queries (role `query`, its query prefix);
  the student later adds ITS prefix of each role, so queries are distilled as queries;
- teacher_scores (gpl): a cross-encoder's (or bi-encoder's) scores of every triplet's (query, positive)
  and (query, negative), and their margin, which MarginMSE teaches the student.

Scores: a cross-encoder's are sentence-transformers' CrossEncoder.predict (a sigmoid over the logit for
a one-label model, in [0, 1]); a bi-encoder's are cosines. Both margins sit in the range of the student's
cosine margins, which is what MarginMSELoss compares them with.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.config import ModelSpec, default_seed
from archive_encoders.corpus.manifest import count_chunks, read_chunks
from archive_encoders.datasets.meta import dataset_meta
from archive_encoders.datasets.reuse import EncodedTexts, LazyModel, encode_reusing
from archive_encoders.datasets.splits import chunks_in_split, train_sample
from archive_encoders.io import read_json, write_json, write_parquet
from archive_encoders.sampling import sample_in_order
from archive_encoders.system import hardware, pick_device

log = logging.getLogger(__name__)

EMBEDDING_SCHEMA = {"text": pl.String, "role": pl.String, "kind": pl.String, "embedding": pl.List(pl.Float32)}


def _spec(teacher: ModelSpec | dict[str, Any]) -> ModelSpec:
    return teacher if isinstance(teacher, ModelSpec) else ModelSpec.from_config(teacher)


def teacher_embeddings(
    corpus: str | os.PathLike,
    splits: str | os.PathLike,
    triplets: str | os.PathLike,
    embeddings_out: str | os.PathLike,
    teacher: ModelSpec | dict[str, Any],
    device: str = "auto",
    max_pairs: int | None = None,
    seed: int | None = None,
    batch_size: int = 32,
    meta_out: str | os.PathLike | None = None,
    triplets_meta: str | os.PathLike | None = None,
    reuse: str | os.PathLike | None = None,
) -> pl.DataFrame:
    """text, role (passage | query), kind (a query's pseudo-query kind), embedding (list[float32]): up to
    max_pairs train chunks (the miner's sample: splits.train_sample) and up to max_pairs distinct
    pseudo-queries of the triplets (seeded), each with the teacher's prefix of its role. `reuse`: the
    miner's embeddings, read when the teacher is the miner's encoder (datasets/reuse.py)."""
    seed = default_seed(seed)
    started = time.perf_counter()
    spec = _spec(teacher)
    if spec.encoder_type != "bi-encoder":
        raise ValueError(
            f"teacher_embeddings: {spec.name} is a {spec.encoder_type}; distill needs a bi-encoder"
        )
    rng = np.random.default_rng(seed)
    train = chunks_in_split(read_chunks(corpus), pl.read_parquet(splits), ["train"])
    anchors = pl.read_parquet(triplets, columns=["anchor", "kind"]).unique(
        "anchor", keep="first", maintain_order=True
    )
    queries, kind_of = anchors["anchor"].to_list(), dict(anchors.rows())
    passages = train_sample(train, max_pairs or train.height, seed)["text"].to_list()  # no max_pairs: all
    chosen_queries = sample_in_order(queries, max_pairs or len(queries), rng)
    device = pick_device(device)
    encode, reused = LazyModel(spec, device, batch_size), EncodedTexts.read(reuse, spec)
    embeddings = np.concatenate(
        [
            encode_reusing(encode, "passage", passages, reused),
            encode_reusing(encode, "query", chosen_queries, reused),
        ]
    )
    encode_s = encode.encode_s
    frame = pl.DataFrame(
        {
            "text": passages + chosen_queries,
            "role": ["passage"] * len(passages) + ["query"] * len(chosen_queries),
            "kind": [None] * len(passages) + [kind_of[q] for q in chosen_queries],
            "embedding": embeddings.tolist(),
        },
        schema=EMBEDDING_SCHEMA,
    )
    write_parquet(frame, embeddings_out)
    if meta_out:
        meta = dataset_meta("teacher_embeddings", frame.height, train.height, count_chunks(corpus), started)
        meta |= {
            "rows_available": train.height + len(queries),
            "passages": len(passages),
            "queries": len(chosen_queries),
            "teacher": spec.name,
            "encode_s": round(encode_s, 3),
            "encoded_texts": encode.encoded,
            "reused_embeddings": reused.reused if reused else 0,
            "hardware": hardware(device),
            "upstream": {"triplets": read_json(triplets_meta)} if triplets_meta else {},
        }
        write_json(meta_out, meta)
    log.info(
        "teacher %s: %d passage and %d query embeddings of %d dims in %.1f s (%d read from the miner's)",
        spec.name,
        len(passages),
        len(chosen_queries),
        embeddings.shape[1],
        encode_s,
        reused.reused if reused else 0,
    )
    return frame


def pair_scores(
    spec: ModelSpec,
    pairs: list[tuple[str, str]],
    device: str,
    batch_size: int,
    reused: EncodedTexts | None = None,
) -> np.ndarray:
    """The teacher's score of each (query, passage): CrossEncoder.predict, or the bi-encoder's cosine
    (its embeddings read from `reused` where it has them)."""
    from archive_encoders.models import load_cross_encoder
    from archive_encoders.vectors import cosines

    if spec.encoder_type == "cross-encoder":
        model = load_cross_encoder(spec, device=device)
        return np.asarray(
            model.predict(pairs, batch_size=batch_size, show_progress_bar=False), dtype=np.float64
        )
    encode = LazyModel(spec, device, batch_size)
    # each distinct text encoded once: a query and a passage recur in several pairs
    query_texts, passage_texts = (list(dict.fromkeys(side)) for side in zip(*pairs, strict=True))
    query_row = {q: i for i, q in enumerate(query_texts)}
    passage_row = {p: i for i, p in enumerate(passage_texts)}
    queries = encode_reusing(encode, "query", query_texts, reused)
    passages = encode_reusing(encode, "passage", passage_texts, reused)
    return cosines(
        queries[[query_row[q] for q, _ in pairs]], passages[[passage_row[p] for _, p in pairs]]
    ).astype(np.float64)


def teacher_scores(
    triplets: str | os.PathLike,
    scores_out: str | os.PathLike,
    teacher: ModelSpec | dict[str, Any],
    device: str = "auto",
    batch_size: int = 32,
    meta_out: str | os.PathLike | None = None,
    triplets_meta: str | os.PathLike | None = None,
    reuse: str | os.PathLike | None = None,
) -> pl.DataFrame:
    """The triplets with the teacher's pos_score, neg_score and margin = pos_score - neg_score (GPL's
    MarginMSE target); each distinct (query, passage) pair is scored once. `reuse`: the miner's
    embeddings, read when the teacher is a bi-encoder and the miner's encoder (datasets/reuse.py)."""
    started = time.perf_counter()
    spec = _spec(teacher)
    frame = pl.read_parquet(triplets)
    pairs = list(
        dict.fromkeys(
            [*frame.select("anchor", "positive").rows(), *frame.select("anchor", "negative").rows()]
        )
    )
    device = pick_device(device)
    reused = EncodedTexts.read(reuse, spec) if spec.encoder_type == "bi-encoder" else None
    encode_started = time.perf_counter()
    score_of = dict(zip(pairs, pair_scores(spec, pairs, device, batch_size, reused), strict=True))
    encode_s = time.perf_counter() - encode_started
    pos = [score_of[p] for p in frame.select("anchor", "positive").rows()]
    neg = [score_of[p] for p in frame.select("anchor", "negative").rows()]
    frame = frame.with_columns(
        pl.Series("pos_score", pos, dtype=pl.Float64),
        pl.Series("neg_score", neg, dtype=pl.Float64),
    ).with_columns((pl.col("pos_score") - pl.col("neg_score")).alias("margin"))
    write_parquet(frame, scores_out)
    if meta_out:
        upstream = read_json(triplets_meta) if triplets_meta else {}
        meta = dataset_meta(
            "teacher_scores",
            frame.height,
            upstream.get("source_chunks", 0),
            upstream.get("corpus_chunks", 0),
            started,
        )
        meta |= {
            "rows_available": upstream.get("rows_available", frame.height),
            "scored_pairs": len(pairs),
            "teacher": spec.name,
            "teacher_type": spec.encoder_type,
            "encode_s": round(encode_s, 3),
            "reused_embeddings": reused.reused if reused else 0,
            "hardware": hardware(device),
            "upstream": {"triplets": upstream} if upstream else {},
        }
        write_json(meta_out, meta)
    log.info(
        "teacher %s: %d pairs scored in %.1f s; margin mean %.3f, share positive %.2f",
        spec.name,
        len(pairs),
        encode_s,
        frame["margin"].mean(),
        (frame["margin"] > 0).mean(),
    )
    return frame
