"""The metadata probe reads only the chunks it embeds: the first max_chunks_per_doc of each document it
probes, filtered inside the Parquet scan, the same rows as filtering the whole chunk table."""

from __future__ import annotations

import polars as pl

from archive_encoders.corpus.manifest import manifest_of_tables, scan_chunks
from archive_encoders.evaluate.probe import document_heads


def test_document_heads_are_the_rows_the_probe_embeds_filtered_in_the_scan(tmp_path):
    rows = [(f"d{d}-{i}", f"d{d}", i, f"text {d} {i}") for d in range(6) for i in range(20)]
    pl.DataFrame(rows, schema=["chunk_id", "doc_id", "chunk_index", "text"], orient="row").write_parquet(
        tmp_path / "chunks.parquet"
    )
    pl.DataFrame({"doc_id": [f"d{d}" for d in range(6)]}).write_parquet(tmp_path / "documents.parquet")
    manifest_of_tables(tmp_path / "corpus.json", tmp_path / "documents.parquet", tmp_path / "chunks.parquet")
    needed = ["d1", "d4"]
    heads = document_heads(scan_chunks(tmp_path / "corpus.json"), needed, 8)
    whole = scan_chunks(tmp_path / "corpus.json").select("doc_id", "chunk_index", "text").collect()
    expected = whole.filter(pl.col("doc_id").is_in(needed) & (pl.col("chunk_index") < 8))
    assert heads.collect().sort("doc_id", "chunk_index").equals(expected.sort("doc_id", "chunk_index"))
    lines = heads.explain().splitlines()
    scan = next(i for i, line in enumerate(lines) if "shard_chunks.parquet]" in line)
    selection = next(line for line in lines[scan:] if "SELECTION" in line)
    assert 'col("chunk_index") < 8' in selection.replace("dyn int: ", "") and "is_in" in selection
