"""chunks.parquet written in small row groups and read by row (index/metadata.py), the index that serves
from it without per-row structures, and BM25's and the hybrid's runs by row, equal to the evaluation's."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from support.index_helpers import encode_for_index
from support.serving_helpers import static_tiny, topic_corpus

from archive_encoders.corpus.manifest import manifest_of_tables
from archive_encoders.datasets.text_analysis import Analyzer
from archive_encoders.evaluate import fusion
from archive_encoders.evaluate.lexical import BM25Index
from archive_encoders.evaluate.ranking import TOP_K, DocumentRanker
from archive_encoders.index.build import build_index
from archive_encoders.index.metadata import (
    ROW_GROUP_ROWS,
    ChunkMetadata,
    IdFingerprint,
    MetadataWriter,
    sha256_of_ids,
)
from archive_encoders.index.search import BrokenIndex, SearchIndex
from archive_encoders.io import write_json

SHOWN = ["chunk_id", "doc_id", "title", "snippet"]


def metadata_frame(count: int, first_row: int = 0) -> pl.DataFrame:
    """`count` rows of chunks.parquet; chunk ids sort in the opposite order to the rows."""
    rows = range(first_row, first_row + count)
    return pl.DataFrame(
        {
            "row": pl.Series(list(rows), dtype=pl.UInt64),
            "chunk_id": [f"c{9999 - r:04d}" for r in rows],
            "doc_id": [f"doc{r // 5}" for r in rows],
            "title": [f"Title {r // 5}" for r in rows],
            "snippet": [f"snippet of row {r} " + "word " * (r % 7) for r in rows],
        }
    )


def write_metadata(path, count: int, row_group_rows: int, batch_rows: int = 40) -> str:
    """chunks.parquet of metadata_frame(count) written batch by batch; returns its ids' sha256,
    computed here by hand."""
    with MetadataWriter(path, row_group_rows) as writer:
        for start in range(0, count, batch_rows):
            writer.write(metadata_frame(min(batch_rows, count - start), start))
    ids = metadata_frame(count)["chunk_id"].to_list()
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def group_sizes(path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]


# --- the writer ---


def test_writer_round_trip_in_row_groups_of_the_set_size(tmp_path):
    path = tmp_path / "chunks.parquet"
    with MetadataWriter(path, 16) as writer:
        for start, rows in ((0, 40), (40, 3), (43, 30)):  # batches that cross group boundaries
            writer.write(metadata_frame(rows, start))
    assert group_sizes(path) == [16, 16, 16, 16, 9]
    assert pl.read_parquet(path).equals(metadata_frame(73))
    default = tmp_path / "default.parquet"
    with MetadataWriter(default) as writer:  # pyarrow input, as build.py's batches are
        writer.write(metadata_frame(ROW_GROUP_ROWS * 2 + 100).to_arrow())
    assert group_sizes(default) == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 100]


def test_an_error_mid_write_leaves_no_file_and_the_old_one_untouched(tmp_path):
    path = tmp_path / "chunks.parquet"
    with pytest.raises(RuntimeError, match="killed"), MetadataWriter(path, 16) as writer:
        writer.write(metadata_frame(40))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_metadata(path, 10, 4)
    before = path.read_bytes()
    with (
        pytest.raises(ValueError, match="must run from 20 to 29") as raised,
        MetadataWriter(path, 16) as writer,
    ):
        writer.write(metadata_frame(20))
        writer.write(metadata_frame(10, 25))  # a gap: rows are the graph's keys
    assert str(path) in str(raised.value)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["chunks.parquet"]


def test_the_writer_refuses_batches_without_a_column_or_a_chunk_id(tmp_path):
    path = tmp_path / "chunks.parquet"
    with pytest.raises(ValueError, match="no column snippet") as raised, MetadataWriter(path) as writer:
        writer.write(metadata_frame(3).drop("snippet"))
    assert str(path) in str(raised.value)
    with pytest.raises(ValueError, match="without a chunk_id"), MetadataWriter(path) as writer:
        writer.write(metadata_frame(3).with_columns(pl.lit(None, dtype=pl.String).alias("chunk_id")))
    assert not path.exists()


# --- the reader ---


def test_rows_of_any_row_numbers_equal_a_full_read(tmp_path):
    path = tmp_path / "chunks.parquet"
    count = 101
    digest = write_metadata(path, count, 8)
    full = pl.read_parquet(path).select(SHOWN).to_dicts()
    meta = ChunkMetadata(path, count, digest)
    wanted = [100, 0, 7, 8, 8, 63, 64, 5, 100, *np.random.default_rng(0).integers(0, count, 30).tolist()]
    assert meta.rows(wanted) == [full[r] for r in wanted]  # asked order, repeats, group edges
    assert meta.rows(np.arange(count, dtype=np.uint64)) == full  # the graph's keys are uint64
    assert meta.rows([]) == []
    with pytest.raises(BrokenIndex, match="row 101 asked for, but it holds 101 rows"):
        meta.rows([3, count])


def test_any_row_group_layout_gives_the_same_rows_and_hash(tmp_path):
    count = 50
    expected = sha256_of_ids(f"c{9999 - r:04d}" for r in range(count))
    rows = []
    for name, size in {"tiny": 1, "small": 7, "single": count}.items():
        path = tmp_path / f"{name}.parquet"
        assert write_metadata(path, count, size, batch_rows=13) == expected
        assert len(group_sizes(path)) == -(-count // size)
        rows.append(ChunkMetadata(path, count, expected).rows(range(count)))  # the hash verified too
    # build.py's layout before MetadataWriter: polars' large strings, one row group per written batch
    legacy = tmp_path / "legacy.parquet"
    table = metadata_frame(count).to_arrow()
    with pq.ParquetWriter(legacy, table.schema) as writer:
        writer.write_table(table.slice(0, 30))
        writer.write_table(table.slice(30))
    assert group_sizes(legacy) == [30, 20]
    rows.append(ChunkMetadata(legacy, count, expected).rows(range(count)))
    assert all(r == rows[0] for r in rows) and rows[0] == metadata_frame(count).select(SHOWN).to_dicts()


def test_the_streamed_id_hash_is_the_whole_lists():
    ids = [f"id{i}" for i in range(10)]
    for pieces in ([ids], [ids[:1], ids[1:]], [[], ids[:4], [], ids[4:9], ids[9:]]):
        fingerprint = IdFingerprint()
        for piece in pieces:
            fingerprint.update(piece)
        assert fingerprint.hexdigest() == sha256_of_ids(ids)
    assert (
        sha256_of_ids(ids) == hashlib.sha256(b"id0\nid1\nid2\nid3\nid4\nid5\nid6\nid7\nid8\nid9").hexdigest()
    )


def swap_two_ids(path):
    frame = pl.read_parquet(path)
    ids = frame["chunk_id"].to_list()
    ids[3], ids[40] = ids[40], ids[3]
    frame.with_columns(pl.Series("chunk_id", ids)).write_parquet(path)


def rewrite(change):
    def apply(path):
        change(pl.read_parquet(path)).write_parquet(path)

    return apply


def corrupt_a_later_row_group(path):
    """Junk over the snippet pages of the third row group: the footer and the ids still read."""
    column = pq.ParquetFile(path).metadata.row_group(2).column(4)
    assert column.path_in_schema == "snippet"
    start = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    path.write_bytes(bytes(data))


def null_at(row: int, column: str) -> pl.Expr:
    return pl.when(pl.col("row") == row).then(None).otherwise(pl.col(column)).alias(column)


# (damage, words of the BrokenIndex besides the file's path)
DAMAGE = {
    "missing": (lambda p: p.unlink(), "missing"),
    "junk": (lambda p: p.write_bytes(b"not parquet" * 50), "cannot be read"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-100]), "cannot be read"),
    "wrong-ids": (swap_two_ids, "chunk ids are not the ones"),
    "missing-column": (rewrite(lambda f: f.drop("title")), "no column title"),
    "one-row-short": (rewrite(lambda f: f.head(-1)), "49 rows, but index.json says 50 vectors"),
    "a-null-id": (rewrite(lambda f: f.with_columns(null_at(3, "chunk_id"))), "chunk ids are not"),
    "numeric-ids": (rewrite(lambda f: f.with_columns(pl.col("row").alias("chunk_id"))), "chunk ids are not"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_metadata_is_a_broken_index_naming_the_file(tmp_path, case):
    path = tmp_path / "chunks.parquet"
    digest = write_metadata(path, 50, 8)
    damage, words = DAMAGE[case]
    damage(path)
    with pytest.raises(BrokenIndex) as raised:
        ChunkMetadata(path, 50, digest, "index.json")
    assert str(raised.value).startswith(f"{path}: ") and words in str(raised.value)


def test_a_row_group_that_cannot_be_decoded_is_a_broken_index_when_read(tmp_path):
    path = tmp_path / "chunks.parquet"
    digest = write_metadata(path, 50, 8)
    corrupt_a_later_row_group(path)
    meta = ChunkMetadata(path, 50, digest)  # the ids still hash: only a hit's read decodes snippets
    assert meta.rows([0])[0]["chunk_id"] == "c9999"
    with pytest.raises(BrokenIndex, match="cannot be read") as raised:
        meta.rows([17])  # third row group
    assert str(raised.value).startswith(f"{path}: ")


def test_the_lru_stays_bounded_and_keeps_the_latest_row_groups(tmp_path):
    path = tmp_path / "chunks.parquet"
    count = 200
    digest = write_metadata(path, count, 10)
    full = pl.read_parquet(path).select(SHOWN).to_dicts()
    meta = ChunkMetadata(path, count, digest, cached_rows=30)
    for row in range(0, count, 5):  # every group, twice each
        assert meta.rows([row]) == [full[row]]
        assert meta.held_rows <= 30 and len(meta.cache) <= 3
    assert list(meta.cache) == [17, 18, 19]
    meta.rows([171])  # group 17 used: 18 is now the oldest
    meta.rows([55])
    assert list(meta.cache) == [19, 17, 5]
    assert meta.rows(range(count)) == full and meta.held_rows == 30  # one call over every group
    alone = ChunkMetadata(path, count, digest, cached_rows=4)  # smaller than a group: the last one stays
    alone.rows([0, 15])
    assert list(alone.cache) == [1] and alone.held_rows == 10


# --- BM25 by row ---

PASSAGES = ["river ice", "garden apple", "river ice", "river", "ice river", "apple river ice river"]


def by_hand(scores: np.ndarray, k: int) -> list[int]:
    """Positive scores best first, ties by position: the rule, in plain Python."""
    return sorted((j for j in range(len(scores)) if scores[j] > 0), key=lambda j: (-scores[j], j))[:k]


def test_bm25_top_rows_equal_its_run_including_ties():
    index = BM25Index(PASSAGES, Analyzer(["en"]))
    ids = [f"p{i}" for i in range(len(PASSAGES))]
    for query in ("river ice", "ice", "apple", "river"):
        scores = index.scores(query)
        for k in (1, 2, 3, 10):
            rows = index.top_rows(query, k)
            assert [j for j, _ in rows] == by_hand(scores, k)
            assert index.run(["q"], [query], ids, None, k)["q"] == [(ids[j], s) for j, s in rows]
    ties = index.top_rows("river ice", 3)  # p0, p2 and p4 hold the same words in passages as long
    assert [j for j, _ in ties] == [0, 2, 4] and ties[0][1] == ties[1][1] == ties[2][1] > 0
    assert 1 not in [j for j, _ in index.top_rows("river", 10)]  # no query word: not returned
    assert index.top_rows("umbrella", 5) == [] and index.run(["q"], ["umbrella"], ids)["q"] == []
    documents = DocumentRanker(["a", "b", "a", "c", "d", "d"])  # a and d hold the tied passages
    best = documents.scores(index.scores("river ice")[None, :])[0]
    in_docs = index.top_rows("river ice", 10, documents)
    assert [j for j, _ in in_docs] == by_hand(best, 10)
    run = index.run(["q"], ["river ice"], ids, documents)["q"]
    assert run == [(documents.doc_ids[j], s) for j, s in in_docs]
    assert [d for d, _ in run[:2]] == ["a", "d"] and run[0][1] == run[1][1]  # tied: document order


# --- the index, served by row ---


@pytest.fixture(scope="module")
def reversed_index(tiny_model, tmp_path_factory):
    """A hybrid-rrf index over more passages than TOP_K, its chunk ids in the opposite order to its
    rows (so ties broken by row and by chunk id differ); (folder, chunks.parquet read whole)."""
    folder = tmp_path_factory.mktemp("reversed-index")
    rows = topic_corpus(per_topic=40)  # 160 passages
    chunks, documents = folder / "chunks.parquet", folder / "documents.parquet"
    pl.DataFrame(
        {
            "chunk_id": [f"c{len(rows) - i:04d}" for i in range(len(rows))],
            "doc_id": [r[1] for r in rows],
            "text": [r[2] for r in rows],
        }
    ).write_parquet(chunks)
    pl.DataFrame(
        {"doc_id": [f"doc{t}" for t in range(4)], "title": [f"Title {t}" for t in range(4)]}
    ).write_parquet(documents)
    manifest_of_tables(folder / "corpus.json", documents, chunks)
    row = {"model": "tiny", "method": "baseline", "variant": "static"}
    artefact = str(static_tiny(tiny_model))
    write_json(folder / "rec.json", {**row, "retriever": "hybrid-rrf", "index": row, "artefact": artefact})
    settings = {"dtype": "f32", "recall_queries": 4, "batch_size": 32, "snippet_chars": 80}
    out = folder / "index"
    embeddings = encode_for_index(folder / "rec.json", folder / "corpus.json", folder / "embeddings")
    build_index(
        folder / "rec.json",
        folder / "corpus.json",
        embeddings,
        out,
        folder / "report.json",
        settings,
        threads=1,
    )
    return out, pl.read_parquet(out / "chunks.parquet")


def test_the_index_holds_no_per_row_structures(reversed_index):
    folder, table = reversed_index
    index = SearchIndex(folder, threads=1)
    assert index.count == table.height > TOP_K
    for owner in (index, index.metadata):
        sized = {
            name: len(v)
            for name, v in vars(owner).items()
            if isinstance(v, (list, tuple, dict, set, np.ndarray))
        }
        assert all(size < index.count // 4 for size in sized.values()), sized
    assert isinstance(index.bm25.retriever.scores["data"], np.memmap)  # BM25's matrix stays on disk
    assert index.metadata.rows(range(index.count)) == table.select(SHOWN).to_dicts()


QUERIES = ("river ice boat", "город история", "apple garden bee", "letter river garden", "winter война")


def test_hybrid_ties_follow_chunk_ids_as_the_evaluations_fusion(reversed_index):
    folder, table = reversed_index
    index = SearchIndex(folder, threads=1)
    ids = table["chunk_id"].to_list()
    tie_order_matters = cut_at_top_k = 0
    for query in QUERIES:
        dense, lexical = index.dense_run(query, TOP_K), index.bm25_run(query, TOP_K)
        named = fusion.fuse(
            {"q": [(ids[r], s) for r, s in dense]}, {"q": [(ids[r], s) for r, s in lexical]}, "rrf"
        )["q"]
        by_row = fusion.fuse({"q": dense}, {"q": lexical}, "rrf")["q"]
        cut_at_top_k += len({row for row, _ in dense + lexical}) > TOP_K  # fuse drops some candidates
        for k in (5, 20, TOP_K, index.count):
            hits = index.search(query, k, retriever="hybrid")
            assert [h.chunk_id for h in hits] == [cid for cid, _ in named[:k]]
            assert [h.score for h in hits] == pytest.approx([s for _, s in named[:k]], abs=1e-4)
            tie_order_matters += [ids[r] for r, _ in by_row[:k]] != [cid for cid, _ in named[:k]]
    assert tie_order_matters  # the fixture has ties that rows and chunk ids order differently
    assert cut_at_top_k  # and queries whose fused run fuse cuts at TOP_K


def test_dense_and_bm25_hits_are_the_rows_they_rank(reversed_index):
    folder, table = reversed_index
    index = SearchIndex(folder, threads=1)
    full = table.select(SHOWN).to_dicts()
    for retriever, run in (("dense", index.dense_run), ("bm25", index.bm25_run)):
        ranked = run("river ice boat", 10)
        hits = index.search("river ice boat", 10, retriever=retriever)
        assert [h.as_dict() for h in hits] == [
            {"rank": i, "score": round(s, 4), **full[r]} for i, (r, s) in enumerate(ranked, start=1)
        ]
