"""Shared by the index tests: a small index over the topic corpus, built as the build_index rule builds it,
for any recommendation (dense, BM25 or a hybrid with its fusion)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from archive_encoders.corpus.manifest import manifest_of_tables
from archive_encoders.encoders.shard_embeddings import encode_corpus_shards
from archive_encoders.index.build import build_index, served_encoder
from archive_encoders.io import write_json
from support.serving_helpers import topic_corpus


def write_corpus(folder: Path):
    rows = topic_corpus()
    chunks = folder / "chunks.parquet"
    pl.DataFrame(
        {"chunk_id": [r[0] for r in rows], "doc_id": [r[1] for r in rows], "text": [r[2] for r in rows]}
    ).write_parquet(chunks)
    documents = folder / "documents.parquet"
    pl.DataFrame(
        {"doc_id": [f"doc{t}" for t in range(4)], "title": [f"Title {t}" for t in range(4)]}
    ).write_parquet(documents)
    return chunks, documents, rows


def encode_for_index(recommendation: Path, corpus: Path, out: Path) -> dict[str, list[str]]:
    """The corpus's shard embeddings of the recommendation's served variant, as encode_shard writes them."""
    rec, variant, artefact = served_encoder(recommendation)
    options = {"batch_size": 8, "threads": 1, "device": "cpu"}
    return encode_corpus_shards(
        corpus, out, variant, artefact, {"name": rec["model"]}, rec["method"], **options
    )


def build_topic_index(folder: Path, variant: str, artefact: Path, retriever="dense", fusion=None):
    """(index folder, build report, corpus rows) for a recommendation of `retriever` (the report's names:
    dense, lexical, hybrid-rrf, hybrid-weighted) over the tiny model's `variant`."""
    chunks, documents, rows = write_corpus(folder)
    recommendation = folder / "recommendation.json"
    row = {"model": "tiny", "method": "baseline", "variant": variant}
    record = {**row, "retriever": retriever, "index": row, "artefact": str(artefact), "fusion": fusion}
    write_json(recommendation, record)
    settings = {"dtype": "f32", "recall_queries": 8, "batch_size": 8, "snippet_chars": 400}
    corpus = folder / "corpus.json"
    manifest_of_tables(corpus, documents, chunks)
    embeddings = encode_for_index(recommendation, corpus, folder / "embeddings")
    out = folder / "index"
    report = build_index(
        recommendation,
        corpus,
        embeddings,
        out,
        folder / "index_report.json",
        settings,
        threads=1,
        languages=["en", "ru"],
    )
    return out, report, rows
