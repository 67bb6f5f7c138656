"""Judgments in SQLite: several annotators (threads of one server, or processes) write at once, and a
written grade is on disk before the writer hears back.

WAL journal, a busy timeout, and every write one committed `BEGIN IMMEDIATE` transaction (the write lock is
taken up front, so two writers queue instead of failing on a lock upgrade). A connection is opened per call:
cheap for SQLite, and safe from any thread or process.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

GRADES = (0, 1, 2)  # 0 not relevant, 1 partly relevant, 2 relevant
SOURCES = ("file", "page")  # a query from the pool file, or one typed on the judging page
BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    query_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('file', 'page')),
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS judgments (
    query_id TEXT NOT NULL REFERENCES queries (query_id),
    corpus_id TEXT NOT NULL,
    annotator TEXT NOT NULL CHECK (length(annotator) > 0),
    grade INTEGER NOT NULL CHECK (grade IN (0, 1, 2)),
    judged_at TEXT NOT NULL,
    PRIMARY KEY (query_id, corpus_id, annotator)
);
"""
JUDGMENT_SCHEMA = {
    "query_id": pl.String,
    "corpus_id": pl.String,
    "annotator": pl.String,
    "grade": pl.Int64,
    "judged_at": pl.String,
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def check_grade(grade: object) -> int:
    if isinstance(grade, bool) or not isinstance(grade, int) or grade not in GRADES:
        raise ValueError(f"grade: must be one of 0, 1, 2 (got {grade!r})")
    return grade


def typed_queries(path: str | os.PathLike) -> list[str]:
    """The texts of the queries typed on the judging page into the database at `path`, oldest first
    (none if it does not exist yet). Read-only: the workflow reads them when it builds its DAG."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            rows = conn.execute("SELECT text FROM queries WHERE source = 'page' ORDER BY rowid").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{path}: not a judgments database ({err})") from None
    return [text for (text,) in rows]


def check_annotator(annotator: object) -> str:
    if not isinstance(annotator, str) or not annotator.strip():
        raise ValueError(f"annotator: must be a non-empty name (got {annotator!r})")
    return annotator.strip()


class JudgmentStore:
    """The judgments database at `path` (created with its tables if missing)."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction (rolled back whole if the block raises)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def add_queries(self, queries: Iterable[tuple[str, str]], source: str = "file") -> int:
        """Register (query_id, text) pairs; a query already known keeps its text and source. Returns how
        many were new."""
        if source not in SOURCES:
            raise ValueError(f"source: must be one of {', '.join(SOURCES)} (got {source!r})")
        rows = [(str(qid), str(text), source, _now()) for qid, text in queries]
        for qid, text, _, _ in rows:
            if not qid.strip() or not text.strip():
                raise ValueError(f"query: id and text must be non-empty (got {qid!r}, {text!r})")
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO queries (query_id, text, source, added_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (query_id) DO NOTHING",
                rows,
            )
            return conn.total_changes - before

    def judge(self, query_id: str, corpus_id: str, annotator: str, grade: int) -> None:
        """Record one grade, committed before returning; a re-judgment by the same annotator replaces it."""
        grade = check_grade(grade)
        annotator = check_annotator(annotator)
        for field, value in (("query_id", query_id), ("corpus_id", corpus_id)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field}: must be a non-empty string (got {value!r})")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM queries WHERE query_id = ?", (query_id,)).fetchone() is None:
                raise ValueError(f"query_id: unknown query {query_id!r}")
            conn.execute(
                "INSERT INTO judgments (query_id, corpus_id, annotator, grade, judged_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (query_id, corpus_id, annotator)"
                " DO UPDATE SET grade = excluded.grade, judged_at = excluded.judged_at",
                (query_id, corpus_id, annotator, grade, _now()),
            )

    def queries(self) -> pl.DataFrame:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT query_id, text, source, added_at FROM queries ORDER BY rowid"
            ).fetchall()
        schema = {"query_id": pl.String, "text": pl.String, "source": pl.String, "added_at": pl.String}
        return pl.DataFrame(rows, schema=schema, orient="row")

    def judgments(self, annotator: str | None = None) -> pl.DataFrame:
        """Every judgment (or one annotator's): query_id, corpus_id, annotator, grade, judged_at."""
        sql = "SELECT query_id, corpus_id, annotator, grade, judged_at FROM judgments"
        args: tuple = ()
        if annotator is not None:
            sql, args = sql + " WHERE annotator = ?", (annotator,)
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY query_id, corpus_id, annotator", args).fetchall()
        return pl.DataFrame(rows, schema=JUDGMENT_SCHEMA, orient="row")

    def grades(self, annotator: str, query_id: str | None = None) -> dict[tuple[str, str], int]:
        """(query_id, corpus_id) -> grade for one annotator (optionally one query)."""
        sql = "SELECT query_id, corpus_id, grade FROM judgments WHERE annotator = ?"
        args: tuple = (annotator,)
        if query_id is not None:
            sql, args = sql + " AND query_id = ?", (annotator, query_id)
        with self._connect() as conn:
            return {(q, c): g for q, c, g in conn.execute(sql, args).fetchall()}
