"""The pool contract: the reader names the file and the column it rejects; pooling deduplicates."""

from __future__ import annotations

import polars as pl
import pytest
from support.judging_helpers import pool_frame, write_pool

from archive_encoders.judging.pool import POOL_SCHEMA, PoolError, pool_queries, pooled_passages, read_pool


def test_read_pool_keeps_the_contract(tmp_path):
    pool_path, _ = write_pool(tmp_path)
    pool = read_pool(pool_path)
    assert pool.schema == pl.Schema(POOL_SCHEMA)
    assert pool.height == pool_frame().height
    assert list(pool_queries(pool)) == ["q1", "q2", "q3"]


def test_pooled_passages_are_deduplicated_best_rank_first(tmp_path):
    pooled = pooled_passages(read_pool(write_pool(tmp_path)[0]))
    assert [p.corpus_id for p in pooled["q1"]] == ["p1", "p2", "p4", "p3", "p5"]
    assert [p.corpus_id for p in pooled["q2"]] == ["p6", "p7", "p8"]
    assert [p.corpus_id for p in pooled["q3"]] == ["p3", "p9", "p1", "p5"]
    assert pooled["q1"][0].doc_id == "doc-p1" and pooled["q1"][0].title == "Иркутский пожар"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("doc_id"), "missing column 'doc_id'"),
        (lambda f: f.with_columns(pl.col("rank").cast(pl.String)), "column 'rank' is String"),
        (lambda f: f.with_columns(pl.col("corpus_id").cast(pl.Categorical)), "column 'corpus_id'"),
        (lambda f: f.with_columns(rank=pl.col("rank") - 1), "column 'rank' starts at 1"),
        (
            lambda f: f.with_columns(
                system=pl.when(pl.col("query_id") == "q1").then(None).otherwise(pl.lit("x"))
            ),
            "column 'system' has",
        ),
        (lambda f: f.with_columns(rank=pl.lit(1)), "column 'rank'.*more than once"),
        (
            lambda f: f.with_columns(
                query=pl.when(pl.col("system") == "bm25").then(pl.lit("other")).otherwise("query")
            ),
            "column 'query'",
        ),
    ],
)
def test_a_broken_pool_names_the_file_and_the_column(tmp_path, change, message):
    path = tmp_path / "pool.parquet"
    change(pool_frame()).write_parquet(path)
    with pytest.raises(PoolError, match=message) as err:
        read_pool(path)
    assert str(path) in str(err.value)


def test_a_missing_or_unreadable_pool(tmp_path):
    with pytest.raises(PoolError, match="no such pool file"):
        read_pool(tmp_path / "nope.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(PoolError, match="bad.parquet: not a Parquet file"):
        read_pool(tmp_path / "bad.parquet")
