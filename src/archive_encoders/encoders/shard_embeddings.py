"""The corpus's embeddings, one shard at a time (rule encode_shard): every non-empty chunk of a shard's
chunks.parquet, in the order the corpus is read (doc_id, chunk_index), encoded as a passage by one variant.

Duplicates are encoded too: which documents are duplicates is decided over the whole corpus
(dedupe_corpus), and an encoding that depended on it would rerun every shard each time the corpus widens.
Readers drop them by chunk id (`rows_of`).

Three files per shard, written atomically (a killed job leaves the old files or none):

    <shard>.npy       float32 (chunks, dimension), unit rows, memory-mappable
    <shard>.parquet   chunk_id, one row per vector, same order
    <shard>.json      shard, count, dimension, model, method, variant, device, encode time, CPU
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders import paths
from archive_encoders.io import atomic_path, read_json, write_json, write_parquet
from archive_encoders.system import cpu_model, pick_device

log = logging.getLogger(__name__)

SUFFIXES = {kind: Path(template).suffix for kind, template in paths.SHARD_EMBEDDINGS.items()}
ENCODE_ROWS = 4096  # texts handed to the encoder per call: what the job holds besides the shard's texts


def shard_texts(chunks: str | os.PathLike) -> pl.DataFrame:
    """A shard's non-empty chunks (chunk_id, text), sorted as the corpus is read: doc_id, chunk_index
    (corpus.manifest.scan_chunk_shards, whose non-empty chunks the index holds)."""
    return (
        pl.scan_parquet(chunks)
        .sort("doc_id", "chunk_index")
        .filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
        .select("chunk_id", "text")
        .collect()
    )


def encode_shard(
    chunks: str | os.PathLike,
    shard: str,
    variant: str,
    folder: str | os.PathLike,
    out_vectors: str | os.PathLike,
    out_ids: str | os.PathLike,
    out_meta: str | os.PathLike,
    model: Mapping[str, Any],
    method: str,
    batch_size: int = 64,
    threads: int | None = None,
    device: str = "auto",
) -> dict:
    """Encode one shard's chunks with `variant` (served from `folder`) and write its three files."""
    from archive_encoders.encoders.loader import load_encoder

    frame = shard_texts(chunks)
    device = pick_device(device)
    encoder = load_encoder(variant, folder, model, threads, device=device)
    started = time.perf_counter()
    with atomic_path(out_vectors) as tmp:
        vectors = None
        for start in range(0, max(frame.height, 1), ENCODE_ROWS):
            texts = frame["text"].slice(start, ENCODE_ROWS).to_list()
            block = encoder.encode_passages(texts, batch_size=batch_size) if texts else None
            if vectors is None:
                dimension = block.shape[1] if block is not None else encoder_dimension(encoder)
                vectors = np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=np.float32, shape=(frame.height, dimension)
                )
            if block is not None:
                vectors[start : start + len(block)] = block
        vectors.flush()
        dimension = int(vectors.shape[1])
        del vectors
    seconds = time.perf_counter() - started
    write_parquet(frame.select("chunk_id"), out_ids)
    meta = {
        "shard": shard,
        "count": frame.height,
        "dimension": dimension,
        "model": model["name"],
        "method": method,
        "variant": variant,
        "device": device,
        "threads": threads,
        "cpu": cpu_model(),
        "encode_s": round(seconds, 3),
        "chunks_per_s": round(frame.height / seconds, 1) if seconds > 0 else None,
    }
    write_json(out_meta, meta)
    log.info("shard %s: %d chunks encoded with %s in %.1f s", shard, frame.height, variant, seconds)
    return meta


def encoder_dimension(encoder) -> int:
    """The encoder's output width, for a shard with no text (an empty file of the right shape)."""
    dimension = getattr(encoder, "dimension", None)
    return int(dimension) if dimension else int(encoder.encode_passages(["a"]).shape[1])


@dataclass
class ShardEmbeddings:
    """One shard's embeddings opened for reading: the vectors memory-mapped, the ids in their order."""

    shard: str
    vectors: np.ndarray
    chunk_ids: pl.Series
    meta: dict

    def rows_of(self, chunk_ids: Sequence[str]) -> np.ndarray:
        """The rows of `chunk_ids` in this shard's files, in the order given; a ValueError naming the
        shard when any is missing (embeddings older than the corpus they are read with)."""
        wanted = pl.DataFrame({"chunk_id": pl.Series(list(chunk_ids), dtype=pl.String)})
        found = wanted.join(
            self.chunk_ids.to_frame().with_row_index("row"), on="chunk_id", how="left", maintain_order="left"
        )
        missing = found.filter(pl.col("row").is_null())
        if missing.height:
            raise ValueError(
                f"embeddings of shard {self.shard}: {missing.height} chunk(s) of the corpus are not in them "
                f"(e.g. {missing['chunk_id'][0]!r}); they are older than the corpus: re-encode the shard"
            )
        return found["row"].to_numpy().astype(np.int64)


def open_shard_embeddings(vectors: str | os.PathLike, ids: str | os.PathLike, meta: str | os.PathLike):
    """A shard's three files, checked against each other: rows, ids and the JSON's count and dimension."""
    info = read_json(meta)
    matrix = np.load(vectors, mmap_mode="r")
    chunk_ids = pl.read_parquet(ids, columns=["chunk_id"])["chunk_id"]
    if matrix.ndim != 2 or matrix.dtype != np.float32:
        raise ValueError(f"{vectors}: not a float32 matrix ({matrix.dtype}, shape {matrix.shape})")
    if not (len(matrix) == len(chunk_ids) == info.get("count")) or matrix.shape[1] != info.get("dimension"):
        raise ValueError(
            f"{vectors}: {matrix.shape} vectors, {len(chunk_ids)} ids in {ids}, {meta} says "
            f"{info.get('count')} x {info.get('dimension')}: the files are of different runs; re-encode it"
        )
    return ShardEmbeddings(shard=str(info["shard"]), vectors=matrix, chunk_ids=chunk_ids, meta=info)


def by_shard(vectors: Sequence[str], ids: Sequence[str], metas: Sequence[str]) -> dict[str, ShardEmbeddings]:
    """{shard name: its embeddings} from the three parallel file lists a rule gets."""
    if not len(vectors) == len(ids) == len(metas):
        raise ValueError(f"{len(vectors)} vector files, {len(ids)} id files, {len(metas)} JSON files")
    shards = [open_shard_embeddings(v, i, m) for v, i, m in zip(vectors, ids, metas, strict=True)]
    return {s.shard: s for s in shards}


def same_encoder(shards: Mapping[str, ShardEmbeddings]) -> dict:
    """The (model, method, variant, dimension) every shard was encoded with; a ValueError if they differ."""
    keys = ("model", "method", "variant", "dimension")
    seen = {tuple(s.meta.get(k) for k in keys) for s in shards.values()}
    if len(seen) != 1:
        raise ValueError(f"shard embeddings of different encoders: {sorted(map(str, seen))}")
    return dict(zip(keys, seen.pop(), strict=True))


def encode_corpus_shards(
    corpus: str | os.PathLike,
    out_dir: str | os.PathLike,
    variant: str,
    folder: str | os.PathLike,
    model: Mapping[str, Any],
    method: str,
    **options: Any,
) -> dict[str, list[str]]:
    """Every shard of a corpus manifest encoded in this process, as the encode_shard jobs would (for a
    corpus of one machine, tests and benchmarks): {vectors, ids, meta: one path per shard}."""
    from archive_encoders.corpus.manifest import read_manifest

    files: dict[str, list[str]] = {"vectors": [], "ids": [], "meta": []}
    for entry in read_manifest(corpus)["shards"]:
        shard = entry["shard"]
        out = {kind: str(Path(out_dir) / f"{shard}{suffix}") for kind, suffix in SUFFIXES.items()}
        encode_shard(
            entry["chunks"],
            shard,
            variant,
            folder,
            out["vectors"],
            out["ids"],
            out["meta"],
            model,
            method,
            **options,
        )
        for kind, path in out.items():
            files[kind].append(path)
    return files
