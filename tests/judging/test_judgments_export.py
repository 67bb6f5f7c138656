"""The judgments as a graded BEIR folder, imported back through datasets.user_sets with grades intact."""

from __future__ import annotations

import json

import polars as pl
import pytest
from support.judging_helpers import JUDGED, PASSAGES, write_pool

from archive_encoders.datasets.user_sets import import_user_set, read_user_set
from archive_encoders.judging.export import ExportError, export_judgments, merge_grades
from archive_encoders.judging.pool import pool_queries, read_pool
from archive_encoders.judging.store import JUDGMENT_SCHEMA, JudgmentStore

EXPECTED = {
    "q1": {"p1": 2, "p2": 2, "p4": 1, "p3": 1, "p5": 0},
    "q2": {"p6": 1, "p7": 2},
    "q3": {"p9": 0},
}


@pytest.fixture()
def judged(tmp_path):
    pool_path, corpus_path = write_pool(tmp_path / "in")
    store = JudgmentStore(tmp_path / "in" / "j.sqlite")
    store.add_queries(pool_queries(read_pool(pool_path)).items())
    for row in JUDGED:
        store.judge(*row)
    return store.path, pool_path, corpus_path


def test_merge_rule_is_the_mean_rounded_half_up():
    merged = merge_grades(pl.DataFrame([(*r, "t") for r in JUDGED], schema=JUDGMENT_SCHEMA, orient="row"))
    got = {}
    for qid, cid, score, _ in merged.rows():
        got.setdefault(qid, {})[cid] = score
    assert got == EXPECTED
    assert merged.schema["score"] == pl.Int32


def test_export_round_trips_through_import_user_set(judged, tmp_path):
    db, pool, corpus = judged
    out = tmp_path / "team_judged"
    summary = export_judgments(db, pool, corpus, out, min_queries=2)
    assert summary["n_queries"] == 3 and summary["n_queries_with_relevant"] == 2
    assert summary["annotators"] == ["ann", "bob", "cyd"]
    assert summary["grades"] == {"0": 2, "1": 3, "2": 3}
    # ann and bob share q1's p2 p4 p3 p5 and q2's p7: (1,2) (0,1) (0,2) (0,0) (2,2), p_o = 2/5;
    # ann 0/1/2 = 3/1/1 of 5, bob 1/1/3: p_e = (3 + 1 + 3) / 25 = 7/25; kappa = (10/25 - 7/25) / (18/25) = 1/6
    assert summary["kappa"]["ann / bob"] == {"kappa": round(1 / 6, 4), "n_pairs": 5}
    assert summary["kappa"]["ann / cyd"] == {"kappa": 0.0, "n_pairs": 1}  # p5: 0 against 1
    # judged (by anyone) of bm25's top 3: q1 3/3, q2 2/3 (p6 p7, not p8), q3 1/3 (p9) -> 2/3
    assert summary["judged_at_10"]["bm25"] == {"judged": round(2 / 3, 4), "flagged": False}
    assert json.loads((out / "judging.json").read_text()) == json.loads(json.dumps(summary))
    lines = [json.loads(line) for line in (out / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {row["_id"]: (row["title"], row["text"]) for row in lines} == PASSAGES  # the whole corpus
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    assert queries[0] == {"_id": "q1", "text": "пожар в Иркутске 1879"}
    assert (out / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"

    n = import_user_set(out, tmp_path / "imported", "team")
    assert n == 2  # q3 has no relevant passage: dropped by the importer (with a warning)
    passages, user_set = read_user_set(tmp_path / "imported")
    assert user_set.qrels == {q: EXPECTED[q] for q in ("q1", "q2")}  # grades 1 and 2 kept apart
    assert passages.height == len(PASSAGES)
    assert set(user_set.queries["query_id"]) == {"q1", "q2"}


def test_export_refuses_too_few_queries_and_a_foreign_corpus(judged, tmp_path):
    db, pool, corpus = judged
    with pytest.raises(ExportError, match="2 judged queries have a relevant passage, 3 are needed"):
        export_judgments(db, pool, corpus, tmp_path / "out", min_queries=3)
    assert not (tmp_path / "out").exists()
    pl.read_parquet(corpus).filter(pl.col("corpus_id") != "p7").write_parquet(tmp_path / "other.parquet")
    with pytest.raises(ExportError, match="other.parquet: judged passage 'p7' is not in this corpus"):
        export_judgments(db, pool, tmp_path / "other.parquet", tmp_path / "out", min_queries=1)
    pl.read_parquet(corpus).drop("title").write_parquet(tmp_path / "notitle.parquet")
    with pytest.raises(ExportError, match="notitle.parquet: missing column 'title'"):
        export_judgments(db, pool, tmp_path / "notitle.parquet", tmp_path / "out", min_queries=1)
    with pytest.raises(ExportError, match="no such judgments database"):
        export_judgments(tmp_path / "none.sqlite", pool, corpus, tmp_path / "out", min_queries=1)
    assert not (tmp_path / "out").exists()


def test_a_new_export_replaces_the_old_folder_whole(judged, tmp_path):
    db, pool, corpus = judged
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    export_judgments(db, pool, corpus, out, min_queries=1)
    assert sorted(p.name for p in out.iterdir()) == ["corpus.jsonl", "judging.json", "qrels", "queries.jsonl"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
