"""The corpus as one dataset: a manifest of the shards' files, and lazy readers over it.

The corpus stage writes per shard (documents, rejections, signatures, chunks) and once for the corpus
(the dedupe table: which documents are duplicates, which cluster each kept one is in). `write_manifest`
lists them in `results/corpus/corpus.json`, with counts; it is the one file later stages depend on, and
they read the corpus through the functions here, which give polars LazyFrames over the shard files
(`pl.scan_parquet`), duplicates dropped, so a reader that selects a few columns or filters rows never
holds the whole corpus:

    scan_documents(manifest)  the columns of documents.DOCUMENT_SCHEMA (cluster_id attached), by doc_id
    scan_chunks(manifest)     the columns of chunk.CHUNK_SCHEMA, by doc_id and chunk_index
    scan_rejected(manifest)   the columns of documents.REJECTED_SCHEMA (duplicates included), by doc_id

The dedupe decision is applied here, at read time, rather than written into the shard files: the
global step then never rewrites a shard's outputs, so a shard that did not change keeps its files (and
Snakemake does not rerun its jobs) however the rest of the corpus changed.

A reader also takes a single Parquet file in the shape of documents.parquet / chunks.parquet (what
`documents.build_documents` and `chunk.chunk_documents` write for a corpus in one piece, and what
tests make by hand) and scans it as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from archive_encoders.corpus.chunk import CHUNK_SCHEMA
from archive_encoders.corpus.documents import DOCUMENT_SCHEMA, REJECTED_SCHEMA
from archive_encoders.io import read_json, write_json

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
SHARD_FILES = ("documents", "rejected", "signatures", "chunks")


def write_manifest(
    manifest_out: str | os.PathLike,
    shards: Sequence[str],
    files: Mapping[str, Sequence[str | os.PathLike]],
    dedupe: str | os.PathLike,
) -> dict[str, Any]:
    """List each shard's files (`files[kind][i]` is shard `shards[i]`'s file of that kind, for every
    kind in SHARD_FILES) and the dedupe table in `manifest_out`, paths relative to its folder, with
    counts read from the files' doc_id columns (no text is read). Returns the manifest."""
    missing = [kind for kind in SHARD_FILES if len(files.get(kind, ())) != len(shards)]
    if missing:
        raise ValueError(f"corpus manifest: need one {', '.join(missing)} file per shard ({len(shards)})")
    root = Path(manifest_out).parent
    dropped = pl.scan_parquet(dedupe).filter(pl.col("duplicate_of").is_not_null()).select("doc_id")
    entries = []
    for i, name in enumerate(shards):
        paths = {kind: files[kind][i] for kind in SHARD_FILES}
        chunks = pl.scan_parquet(paths["chunks"]).select("doc_id").join(dropped, on="doc_id", how="anti")
        entries.append(
            {
                "shard": name,
                **{kind: _relative(path, root) for kind, path in paths.items()},
                "documents_cleaned": _rows(pl.scan_parquet(paths["documents"])),
                "rejected_in_shard": _rows(pl.scan_parquet(paths["rejected"])),
                "chunks_kept": _rows(chunks),
            }
        )
    duplicates = _rows(dropped)
    counts = {
        "shards": len(entries),
        "documents": sum(e["documents_cleaned"] for e in entries) - duplicates,
        "duplicates": duplicates,
        "rejected": sum(e["rejected_in_shard"] for e in entries) + duplicates,
        "chunks": sum(e["chunks_kept"] for e in entries),
    }
    manifest = {
        "version": MANIFEST_VERSION,
        "shards": entries,
        "dedupe": _relative(dedupe, root),
        "counts": counts,
    }
    write_json(manifest_out, manifest)
    log.info("corpus: %s", counts)
    return manifest


def _relative(path: str | os.PathLike, root: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def _rows(frame: pl.LazyFrame) -> int:
    return int(frame.select(pl.len()).collect().item())


def read_manifest(manifest: str | os.PathLike) -> dict[str, Any]:
    """The manifest, its file paths joined to its folder (they are stored relative to it)."""
    path = Path(manifest)
    data = read_json(path)
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path}: corpus manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}"
        )
    root = path.parent
    data["dedupe"] = str(root / data["dedupe"])
    for entry in data["shards"]:
        for kind in SHARD_FILES:
            entry[kind] = str(root / entry[kind])
    return data


def _is_manifest(source: str | os.PathLike) -> bool:
    return str(source).endswith(".json")


def _shard_files(data: Mapping[str, Any], kind: str) -> list[str]:
    return [entry[kind] for entry in data["shards"]]


def _scan(files: Sequence[str], schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    if not files:  # a corpus with no shard: the columns, no rows
        return pl.LazyFrame(schema=dict(schema))
    return pl.scan_parquet(list(files))


def _dedupe(data: Mapping[str, Any]) -> pl.LazyFrame:
    return pl.scan_parquet(data["dedupe"])


def scan_documents(source: str | os.PathLike) -> pl.LazyFrame:
    """The corpus's documents (documents.DOCUMENT_SCHEMA), duplicates dropped, sorted by doc_id."""
    if not _is_manifest(source):
        return pl.scan_parquet(source)
    data = read_manifest(source)
    kept = _dedupe(data).filter(pl.col("duplicate_of").is_null()).select("doc_id", "cluster_id")
    documents = _scan(
        _shard_files(data, "documents"), {k: v for k, v in DOCUMENT_SCHEMA.items() if k != "cluster_id"}
    )
    return documents.join(kept, on="doc_id", how="inner").select(list(DOCUMENT_SCHEMA)).sort("doc_id")


def scan_chunks(source: str | os.PathLike) -> pl.LazyFrame:
    """The corpus's chunks (chunk.CHUNK_SCHEMA) of documents that are not duplicates, sorted by doc_id,
    chunk_index."""
    if not _is_manifest(source):
        return pl.scan_parquet(source)
    data = read_manifest(source)
    dropped = _dedupe(data).filter(pl.col("duplicate_of").is_not_null()).select("doc_id")
    chunks = _scan(_shard_files(data, "chunks"), CHUNK_SCHEMA)
    return chunks.join(dropped, on="doc_id", how="anti").sort("doc_id", "chunk_index")


def scan_chunk_shards(source: str | os.PathLike) -> list[pl.LazyFrame]:
    """scan_chunks shard by shard (a single table is one shard), each sorted by doc_id, chunk_index: for
    a pass over the corpus that holds one shard at a time."""
    if not _is_manifest(source):
        return [pl.scan_parquet(source).sort("doc_id", "chunk_index")]
    data = read_manifest(source)
    dropped = _dedupe(data).filter(pl.col("duplicate_of").is_not_null()).select("doc_id")
    return [
        _scan([path], CHUNK_SCHEMA).join(dropped, on="doc_id", how="anti").sort("doc_id", "chunk_index")
        for path in _shard_files(data, "chunks")
    ]


def scan_rejected(source: str | os.PathLike) -> pl.LazyFrame:
    """Every rejected document (documents.REJECTED_SCHEMA): the shards' decode/quality/language
    rejections and the dedupe step's duplicates, sorted by doc_id."""
    if not _is_manifest(source):
        return pl.scan_parquet(source)
    data = read_manifest(source)
    duplicates = (
        _dedupe(data)
        .filter(pl.col("duplicate_of").is_not_null())
        .select("doc_id", pl.lit("duplicate").alias("stage"), "reason", "duplicate_of")
    )
    rejected = _scan(_shard_files(data, "rejected"), REJECTED_SCHEMA)
    return pl.concat([rejected, duplicates]).sort("doc_id")


def read_text_chunks(chunks_path: str | os.PathLike, columns: Sequence[str] = ("chunk_id", "doc_id", "text")):
    """The chunk table (a polars DataFrame with `columns`), rows with empty text dropped."""
    import polars as pl

    from archive_encoders.corpus.manifest import scan_chunks

    frame = scan_chunks(chunks_path).select(list(columns)).collect()
    if "text" in frame.columns:
        frame = frame.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    return frame


CHUNK_COLUMNS = ["chunk_id", "doc_id", "chunk_index", "text", "char_start", "char_end"]


def read_chunks(path: str | os.PathLike, columns: Sequence[str] = CHUNK_COLUMNS) -> pl.DataFrame:
    """The corpus chunks (the one place the datasets read them: the corpus stage's layout may change)."""
    return scan_chunks(path).select(list(columns)).collect()


def count_chunks(path: str | os.PathLike) -> int:
    return int(scan_chunks(path).select(pl.len()).collect().item())


def manifest_of_tables(
    manifest_out: str | os.PathLike, documents: str | os.PathLike, chunks: str | os.PathLike
) -> dict[str, Any]:
    """A one-shard corpus over a documents and a chunks table made elsewhere (a team's own corpus, a
    test's): the tables are copied in the shard layout beside the manifest (columns they lack are null),
    with no rejections and no duplicates; each document is its own cluster unless it names one."""
    from archive_encoders.corpus.dedupe import DEDUPE_SCHEMA, SIGNATURE_SCHEMA
    from archive_encoders.corpus.documents import SHARD_DOCUMENT_SCHEMA
    from archive_encoders.io import write_parquet

    root = Path(manifest_out).parent
    docs = pl.read_parquet(documents)
    if "text_original" not in docs.columns and "text" in docs.columns:
        docs = docs.with_columns(text_original=pl.col("text"))
    clusters = docs["cluster_id"] if "cluster_id" in docs.columns else docs["doc_id"]
    tables = {
        "documents": _conform(docs, SHARD_DOCUMENT_SCHEMA),
        "chunks": _conform(pl.read_parquet(chunks), CHUNK_SCHEMA),
        "rejected": pl.DataFrame(schema=REJECTED_SCHEMA),
        "signatures": pl.DataFrame(schema=SIGNATURE_SCHEMA),
        "dedupe": pl.DataFrame({"doc_id": docs["doc_id"], "cluster_id": clusters.fill_null(docs["doc_id"])})
        .with_columns(duplicate_of=pl.lit(None, pl.String), reason=pl.lit(None, pl.String))
        .select(list(DEDUPE_SCHEMA)),
    }
    files = {}
    for kind, frame in tables.items():
        files[kind] = root / f"shard_{kind}.parquet"
        write_parquet(frame, files[kind])
    dedupe = files.pop("dedupe")
    return write_manifest(manifest_out, ["00000"], {k: [v] for k, v in files.items()}, dedupe)


def _conform(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """The frame with exactly the schema's columns, in order (missing ones null)."""
    return frame.select(
        [pl.col(k).cast(t) if k in frame.columns else pl.lit(None, t).alias(k) for k, t in schema.items()]
    )
