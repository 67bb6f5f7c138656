"""A team's own judged queries (BEIR folder or Parquet), checked and written in the query-set layout."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from archive_encoders.datasets.querysets import (
    CHUNK_LEVEL,
    CORPUS_COLUMNS,
    OVERRIDE_SCHEMA,
    QUERY_SCHEMA,
    QuerySet,
    read_set,
)
from archive_encoders.io import atomic_dir, write_json, write_parquet

log = logging.getLogger(__name__)


class RetrievalSetError(ValueError):
    """A user-judged set that cannot be scored; the message names the file and the offending id."""


def _read_jsonl(path: Path, id_key: str, fields: Sequence[str]) -> pl.DataFrame:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RetrievalSetError(f"{path}: line {line_no} is not JSON ({err.msg})") from None
            if not isinstance(record, dict) or id_key not in record or "text" not in record:
                raise RetrievalSetError(f"{path}: line {line_no} lacks {id_key!r} or 'text'")
            rows.append([str(record[id_key]), *(str(record.get(f) or "") for f in fields)])
    return pl.DataFrame(rows, schema=["id", *fields], orient="row")


def _read_beir(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Path]]:
    files = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl"}
    files["qrels"] = folder / "qrels" / "test.tsv"
    for path in files.values():
        if not path.is_file():
            raise RetrievalSetError(f"{folder}: BEIR layout needs {path.relative_to(folder)}")
    corpus = _read_jsonl(files["corpus"], "_id", ["text", "title"]).rename({"id": "corpus_id"})
    queries = _read_jsonl(files["queries"], "_id", ["text"]).rename({"id": "query_id"})
    try:
        qrels = pl.read_csv(
            files["qrels"], separator="\t", schema_overrides={"query-id": pl.String, "corpus-id": pl.String}
        )
        qrels = qrels.select(
            pl.col("query-id").alias("query_id"),
            pl.col("corpus-id").alias("corpus_id"),
            pl.col("score").cast(pl.Int32, strict=True),
        )
    except (pl.exceptions.PolarsError, KeyError) as err:
        raise RetrievalSetError(
            f"{files['qrels']}: expected columns query-id, corpus-id, score ({err})"
        ) from None
    return corpus, queries, qrels, files


def _read_parquet_set(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Path]]:
    files = {name: folder / f"{name}.parquet" for name in ("corpus", "queries", "qrels")}
    wanted = {"corpus": {"corpus_id", "text"}, "queries": {"query_id", "text"}}
    wanted["qrels"] = {"query_id", "corpus_id", "score"}
    frames = {}
    for name, path in files.items():
        if not path.is_file():
            raise RetrievalSetError(f"{folder}: needs {path.name} (or the BEIR layout)")
        frames[name] = pl.read_parquet(path)
        missing = wanted[name] - set(frames[name].columns)
        if missing:
            raise RetrievalSetError(f"{path}: missing column(s) {sorted(missing)}")
    corpus = frames["corpus"].with_columns(pl.col("corpus_id").cast(pl.String))
    if "title" not in corpus.columns:
        corpus = corpus.with_columns(title=pl.lit(None, dtype=pl.String))
    queries = frames["queries"].select(pl.col("query_id").cast(pl.String), "text")
    qrels = frames["qrels"].select(
        pl.col("query_id").cast(pl.String),
        pl.col("corpus_id").cast(pl.String),
        pl.col("score").cast(pl.Int32),
    )
    return corpus, queries, qrels, files


def check_user_set(corpus, queries, qrels, files: Mapping[str, Path]) -> None:
    """Unique ids, qrels naming only known queries and documents, at least one relevant judgement."""
    for frame, key, name in ((corpus, "corpus_id", "corpus"), (queries, "query_id", "queries")):
        dupes = frame.filter(pl.col(key).is_duplicated())[key].unique().to_list()
        if dupes:
            raise RetrievalSetError(f"{files[name]}: id {sorted(dupes)[0]!r} appears more than once")
    for key, known, label in (
        ("query_id", set(queries["query_id"]), "query"),
        ("corpus_id", set(corpus["corpus_id"]), "document"),
    ):
        unknown = sorted(set(qrels[key]) - known)
        if unknown:
            raise RetrievalSetError(f"{files['qrels']}: names unknown {label} id {unknown[0]!r}")
    if qrels.filter(pl.col("score") > 0).is_empty():
        raise RetrievalSetError(f"{files['qrels']}: no judgement with score >= 1")


def import_user_set(source: str | os.PathLike, out_dir: str | os.PathLike, name: str) -> int:
    """Validate a user-judged set (BEIR layout or Parquet) and write it in our layout; returns its queries.

    Only judged queries with a relevant document are scored; the rest are dropped (logged). Every query
    is its own bootstrap group: nothing says which of a team's queries belong together."""
    source = Path(source)
    if not source.is_dir():
        raise RetrievalSetError(f"evaluate.retrieval_sets: {source} is not a folder")
    reader = _read_beir if (source / "corpus.jsonl").exists() else _read_parquet_set
    corpus, queries, qrels, files = reader(source)
    check_user_set(corpus, queries, qrels, files)
    scored = set(qrels.filter(pl.col("score") > 0)["query_id"])
    dropped = queries.height - len(scored)
    if dropped:
        log.warning("%s: %d queries have no relevant document and are not scored", name, dropped)
    queries = queries.filter(pl.col("query_id").is_in(list(scored))).with_columns(
        group=pl.col("query_id"), kind=pl.lit("user")
    )
    doc_ids = corpus["doc_id"] if "doc_id" in corpus.columns else corpus["corpus_id"]
    corpus = corpus.with_columns(doc_id=doc_ids.cast(pl.String), cluster_id=doc_ids.cast(pl.String))
    with atomic_dir(out_dir) as tmp:
        write_parquet(corpus.select(CORPUS_COLUMNS), tmp / "corpus.parquet")
        write_parquet(queries.select(list(QUERY_SCHEMA)), tmp / "queries.parquet")
        write_parquet(qrels.filter(pl.col("query_id").is_in(list(scored))), tmp / "qrels.parquet")
        write_parquet(pl.DataFrame(schema=OVERRIDE_SCHEMA), tmp / "overrides.parquet")
        write_json(
            tmp / "set.json",
            {
                "name": name,
                "split": "test",
                "level": CHUNK_LEVEL,
                "generator": None,
                "description": f"user-judged queries from {source.name}",
                "corpus": f"user/{name}",
                "n_queries": queries.height,
                "n_qrels": qrels.height,
            },
        )
    log.info("%s: %d queries over %d documents", name, queries.height, corpus.height)
    return queries.height


def read_user_set(folder: str | os.PathLike) -> tuple[pl.DataFrame, QuerySet]:
    return pl.read_parquet(Path(folder) / "corpus.parquet"), read_set(folder)
