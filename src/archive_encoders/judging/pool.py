"""The judging pool: for each query, the top `depth` passages of every system, and the passages it pools.

Contract (written by the pooling rule, read here): `pool.parquet` with one row per (query, system, rank):

    query_id str, query str, system str ("bm25", "minilm/lora/onnx-int8/dense", ...), rank int (1-based),
    corpus_id str, doc_id str, title str, text str
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

POOL_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String,
    "query": pl.String,
    "system": pl.String,
    "rank": pl.Int64,
    "corpus_id": pl.String,
    "doc_id": pl.String,
    "title": pl.String,
    "text": pl.String,
}
# Columns that identify a row: a null there makes the pool unusable (title and text may be empty).
KEY_COLUMNS = ("query_id", "query", "system", "rank", "corpus_id", "doc_id")


class PoolError(ValueError):
    """A pool that breaks the contract; the message names the file and the column."""


@dataclass(frozen=True)
class Passage:
    corpus_id: str
    doc_id: str
    title: str
    text: str


def read_pool(path: str | os.PathLike) -> pl.DataFrame:
    """Read and check `pool.parquet`: every column of POOL_SCHEMA with its type, ids never null, rank >= 1,
    one passage per (query, system, rank) and one query text per query."""
    path = Path(path)
    if not path.is_file():
        raise PoolError(f"{path}: no such pool file")
    try:
        pool = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise PoolError(f"{path}: not a Parquet file ({err})") from None
    return check_pool(pool, str(path))


def check_pool(pool: pl.DataFrame, name: str = "pool") -> pl.DataFrame:
    for column, dtype in POOL_SCHEMA.items():
        if column not in pool.columns:
            raise PoolError(f"{name}: missing column {column!r} (a pool has {', '.join(POOL_SCHEMA)})")
        actual = pool.schema[column]
        wanted_int = dtype == pl.Int64
        if (wanted_int and not actual.is_integer()) or (not wanted_int and actual != pl.String):
            kind = "an integer" if wanted_int else "a string"
            raise PoolError(f"{name}: column {column!r} is {actual}, expected {kind} column")
    pool = pool.select(pl.col(c).cast(t) for c, t in POOL_SCHEMA.items())
    for column in KEY_COLUMNS:
        if pool[column].null_count():
            raise PoolError(f"{name}: column {column!r} has {pool[column].null_count()} null value(s)")
    if pool.height and pool["rank"].min() < 1:
        raise PoolError(f"{name}: column 'rank' starts at 1, found {pool['rank'].min()}")
    dupes = pool.filter(pl.struct("query_id", "system", "rank").is_duplicated())
    if dupes.height:
        q, s, r = dupes.row(0)[0], dupes.row(0)[2], dupes.row(0)[3]
        raise PoolError(f"{name}: column 'rank': query {q!r}, system {s!r} has rank {r} more than once")
    texts = pool.group_by("query_id").agg(pl.col("query").n_unique().alias("n")).filter(pl.col("n") > 1)
    if texts.height:
        raise PoolError(f"{name}: column 'query': query {texts['query_id'][0]!r} has more than one text")
    return pool.with_columns(pl.col("title", "text").fill_null(""))


def pool_queries(pool: pl.DataFrame) -> dict[str, str]:
    """query_id -> query text, in the pool's order of first appearance."""
    return dict(pool.select("query_id", "query").unique(subset="query_id", maintain_order=True).rows())


def pooled_passages(pool: pl.DataFrame) -> dict[str, list[Passage]]:
    """Per query, its passages pooled over every system without duplicates, best rank first (ties by
    corpus_id): what an annotator judges. Queries in the pool's order of first appearance."""
    order = {qid: i for i, qid in enumerate(pool_queries(pool))}
    best = (
        pool.group_by("query_id", "corpus_id")
        .agg(pl.col("rank").min(), pl.col("doc_id", "title", "text").first())
        .sort("query_id", "rank", "corpus_id")
    )
    out: dict[str, list[Passage]] = {qid: [] for qid in sorted(order, key=order.get)}
    for qid, cid, _, doc_id, title, text in best.rows():
        out[qid].append(Passage(cid, doc_id, title, text))
    return out
