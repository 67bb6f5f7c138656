"""train_chunk_sample: the same samples as sampling the whole train text list, reading only the picked
texts (a corpus in shards, as the corpus stage writes it, and a single chunk table)."""

from __future__ import annotations

import polars as pl
import pytest

from archive_encoders.corpus.manifest import manifest_of_tables, scan_chunks
from archive_encoders.datasets.splits import train_chunk_sample, train_chunk_texts
from archive_encoders.sampling import sample_split


@pytest.fixture
def corpus(tmp_path):
    docs = [f"doc{d:02d}" for d in range(12)]
    rows = [(f"{d}-{i}", d, i, "" if i == 3 else f"text {d} {i}") for d in reversed(docs) for i in range(9)]
    chunks = pl.DataFrame(rows, schema=["chunk_id", "doc_id", "chunk_index", "text"], orient="row")
    chunks.write_parquet(tmp_path / "chunks.parquet")
    pl.DataFrame({"doc_id": docs, "title": docs}).write_parquet(tmp_path / "documents.parquet")
    manifest_of_tables(tmp_path / "corpus.json", tmp_path / "documents.parquet", tmp_path / "chunks.parquet")
    splits = ["train" if d % 3 else "test" for d in range(12)]
    pl.DataFrame({"doc_id": docs, "split": splits}).write_parquet(tmp_path / "splits.parquet")
    return tmp_path


@pytest.mark.parametrize("source", ["corpus.json", "chunks.parquet"])
@pytest.mark.parametrize(("n", "seed"), [(5, 0), (5, 13), (30, 1), (200, 2)])
def test_the_sample_is_the_one_of_the_whole_list(corpus, source, n, seed):
    texts = train_chunk_texts(corpus / source, corpus / "splits.parquet")
    assert len(texts) == 8 * 8 and all(t.startswith("text doc") for t in texts)
    expected = sample_split(texts, n, seed)
    assert train_chunk_sample(corpus / source, corpus / "splits.parquet", n, seed) == expected


def test_the_id_listing_drops_the_texts_inside_the_scan(corpus):
    # the plan the sampler's first read runs: the text filter is evaluated in the Parquet scan and the
    # text column does not reach the sort (so the corpus's texts are never held together)
    train = scan_chunks(corpus / "corpus.json").filter(pl.col("doc_id").is_in(["doc01"]))
    has_text = pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != "")
    lines = train.filter(has_text).select("chunk_id").explain().splitlines()
    scan = next(i for i, line in enumerate(lines) if "shard_chunks.parquet]" in line)
    assert lines[scan - 1].strip().startswith("simple π") and '"text"' not in lines[scan - 1]
    selection = next(line for line in lines[scan:] if "SELECTION" in line)
    assert 'col("text")' in selection and 'col("doc_id")' in selection
