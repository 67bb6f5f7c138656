"""The judgments store: validation, re-judgment, and two processes writing at once losing nothing."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from archive_encoders.judging.store import JudgmentStore

N_EACH = 200


def test_tables_wal_and_rejudgment(tmp_path):
    store = JudgmentStore(tmp_path / "j.sqlite")
    assert store.add_queries([("q1", "пожар"), ("q2", "Baikal")]) == 2
    assert store.add_queries([("q1", "changed")], source="page") == 0  # a known query keeps its text
    store.judge("q1", "p1", "ann", 1)
    store.judge("q1", "p1", "ann", 2)  # a re-judgment replaces
    store.judge("q1", "p1", "bob", 0)
    rows = store.judgments().select("query_id", "corpus_id", "annotator", "grade").rows()
    assert rows == [("q1", "p1", "ann", 2), ("q1", "p1", "bob", 0)]
    assert store.queries().select("query_id", "text", "source").rows() == [
        ("q1", "пожар", "file"),
        ("q2", "Baikal", "file"),
    ]
    assert store.grades("ann") == {("q1", "p1"): 2}
    with sqlite3.connect(tmp_path / "j.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("q1", "p1", "ann", 3), "grade"),
        (("q1", "p1", "ann", -1), "grade"),
        (("q1", "p1", "ann", True), "grade"),
        (("q1", "p1", "ann", "2"), "grade"),
        (("q1", "p1", "", 1), "annotator"),
        (("q1", "p1", "   ", 1), "annotator"),
        (("q1", "", "ann", 1), "corpus_id"),
        (("q9", "p1", "ann", 1), "query_id"),
    ],
)
def test_bad_judgments_are_refused_naming_the_field(tmp_path, args, field):
    store = JudgmentStore(tmp_path / "j.sqlite")
    store.add_queries([("q1", "text")])
    with pytest.raises(ValueError, match=f"^{field}:"):
        store.judge(*args)
    assert store.judgments().is_empty()
    with pytest.raises(ValueError, match="^source:"):
        store.add_queries([("q2", "t")], source="web")


def _write_many(path: str, annotator: str, start, n: int) -> None:
    store = JudgmentStore(path, timeout_s=60)
    start.wait()
    for i in range(n):
        store.judge(f"q{i % 10}", f"p{i}", annotator, i % 3)


def test_two_annotators_writing_at_once_from_two_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "j.sqlite")
    JudgmentStore(path).add_queries([(f"q{i}", f"query {i}") for i in range(10)])
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=_write_many, args=(path, name, start, N_EACH)) for name in ("ann", "bob")]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    judgments = JudgmentStore(path).judgments()
    assert judgments.height == 2 * N_EACH
    for name in ("ann", "bob"):
        mine = judgments.filter(annotator=name)
        assert sorted(mine["corpus_id"].to_list()) == sorted(f"p{i}" for i in range(N_EACH))
        assert dict(zip(mine["corpus_id"], mine["grade"], strict=True)) == {
            f"p{i}": i % 3 for i in range(N_EACH)
        }


def test_typed_queries_reads_only_the_page_queries_and_never_creates_a_database(tmp_path):
    from archive_encoders.judging.store import typed_queries

    db = tmp_path / "j.sqlite"
    assert typed_queries(db) == [] and not db.exists()
    store = JudgmentStore(db)
    store.add_queries([("f1", "from the file")], source="file")
    store.add_queries([("p1", "typed first"), ("p2", "typed second")], source="page")
    assert typed_queries(db) == ["typed first", "typed second"]
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 10)
    with pytest.raises(ValueError, match="junk.sqlite: not a judgments database"):
        typed_queries(junk)
