"""The index build's streamed pass: shard by shard, batch by batch, with nothing that needs the whole
corpus's texts or vectors at once, and the same results as the all-at-once computations it replaced."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive_encoders.corpus.manifest import manifest_of_tables, read_text_chunks, write_manifest
from archive_encoders.datasets.text_analysis import Analyzer
from archive_encoders.evaluate.lexical import BM25Index
from archive_encoders.index.build import Reservoir, TokenIds, corpus_batches, exact_top_k


def one_shard(folder, docs: list[str], chunks_per_doc: int = 3):
    documents = pl.DataFrame(
        {"doc_id": docs, "title": [f"Title {d}" for d in docs], "text": ["x"] * len(docs)}
    )
    chunks = pl.DataFrame(
        [
            (f"{d}-{i}", d, i, "" if i == 1 and d.endswith("b") else f"text {d} {i}", 0, 1)
            for d in docs
            for i in range(chunks_per_doc)
        ],
        schema=["chunk_id", "doc_id", "chunk_index", "text", "char_start", "char_end"],
        orient="row",
    )
    folder.mkdir()
    documents.write_parquet(folder / "documents.parquet")
    chunks.write_parquet(folder / "chunks.parquet")
    return manifest_of_tables(folder / "corpus.json", folder / "documents.parquet", folder / "chunks.parquet")


@pytest.fixture()
def two_shards(tmp_path):
    first, second = one_shard(tmp_path / "s0", ["a1", "a2b"]), one_shard(tmp_path / "s1", ["b1", "b2"])
    kinds = ("documents", "chunks", "rejected", "signatures")
    files = {k: [first["shards"][0][k], second["shards"][0][k]] for k in kinds}
    for entry in files.values():
        for i, path in enumerate(entry):
            entry[i] = (tmp_path / f"s{i}" / path) if not str(path).startswith("/") else path
    dedupe = pl.DataFrame(
        {
            "doc_id": ["a1", "a2b", "b1", "b2"],
            "cluster_id": ["a1", "a2b", "b1", "a1"],
            "duplicate_of": [None, None, None, "a1"],  # b2 is a second scan of a1: never indexed
            "reason": [None, None, None, "near-duplicate"],
        }
    )
    dedupe.write_parquet(tmp_path / "dedupe.parquet")
    write_manifest(tmp_path / "corpus.json", ["00000", "00001"], files, tmp_path / "dedupe.parquet")
    return tmp_path / "corpus.json"


def test_batches_cover_the_corpus_one_shard_at_a_time(two_shards):
    named = list(corpus_batches(two_shards, rows=2))
    assert [name for name, _ in named] == ["00000", "00000", "00000", "00001", "00001"]
    batches = [batch for _, batch in named]
    ids = [b["chunk_id"].to_list() for b in batches]
    # shard 00000: a1's 3 chunks and a2b's 2 non-empty ones; shard 00001: b1's 3 (b2 is a duplicate)
    assert ids == [["a1-0", "a1-1"], ["a1-2", "a2b-0"], ["a2b-2"], ["b1-0", "b1-1"], ["b1-2"]]
    assert sorted(sum(ids, [])) == sorted(read_text_chunks(two_shards)["chunk_id"].to_list())
    assert batches[0]["title"].to_list() == ["Title a1", "Title a1"]


def test_bm25_from_token_ids_scores_as_bm25_from_texts():
    texts = [
        "Пожар в Москве уничтожил половину города",
        "The fire in Moscow in 1812",
        "",
        "Рыбный промысел на Байкале, пожар рыбаков",
        "Наводнение в Петербурге 1824 года",
    ]
    analyzer = Analyzer(["ru", "en"])
    tokens = TokenIds(analyzer)
    tokens.add(texts[:2])
    tokens.add(texts[2:])
    streamed = BM25Index.from_token_ids(tokens.ids, tokens.vocab, analyzer)
    whole = BM25Index(texts, analyzer)
    for query in ("пожар", "fire Moscow", "Байкал пожар 1824", "nothing here"):
        np.testing.assert_allclose(streamed.scores(query), whole.scores(query), rtol=1e-6)


def test_the_reservoir_is_seeded_and_keeps_everything_of_a_short_stream():
    stream = list(range(1000))
    first, second = Reservoir(50, seed=3), Reservoir(50, seed=3)
    for start in range(0, 1000, 64):
        first.offer(stream[start : start + 64])
    second.offer(stream)
    assert first.items == second.items and len(set(first.items)) == 50
    assert first.seen == 1000
    short = Reservoir(50, seed=3)
    short.offer(range(7))
    assert short.items == list(range(7))


@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 9), st.integers(0, 2**16))
def test_exact_top_k_by_blocks_is_a_stable_argsort_over_all_rows(rows, k, block, seed):
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-2, 3, size=(rows, 4)).astype(np.float32)  # small integers: many ties
    queries = rng.integers(-2, 3, size=(3, 4)).astype(np.float32)
    k = min(k, rows)
    expected = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(exact_top_k(queries, vectors, k, block=block), expected)


def test_a_shard_without_chunks_gives_no_batch(tmp_path):
    one_shard(tmp_path / "s", ["d1"], chunks_per_doc=0)
    assert list(corpus_batches(tmp_path / "s" / "corpus.json")) == []
