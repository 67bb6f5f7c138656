"""The judging pool: a team's queries ranked by every evaluated retriever, pooled (TREC's method)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.eval_fixtures import fake_evaluations

from archive_encoders import paths
from archive_encoders.datasets.team_queries import TeamQueryError, read_team_queries, write_team_queries
from archive_encoders.evaluate import fusion
from archive_encoders.evaluate.compare import compare
from archive_encoders.evaluate.ranking import frame_to_run
from archive_encoders.judging import build_pool

QUALITY = {("baseline", "torch"): 0.9, ("lora", "torch"): 0.2}
DEPTH = 5


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    text = root / "queries.txt"
    text.write_text(
        "# a comment\ntopic 3 passage\n\ntest passage 7 about topic 0\ntopic 3 passage\nunseen words\n"
    )
    queries = root / "queries.parquet"
    write_team_queries(text, queries)
    monkeypatch = pytest.MonkeyPatch()
    folders = fake_evaluations(root, monkeypatch, QUALITY, judging_queries=queries)
    monkeypatch.undo()
    dense = [folders["baseline"], folders["lora"]]
    compare(dense, folders["bm25"], root / "querysets", [], root / "compare", bootstrap_samples=50, seed=5)
    pool = build_pool(
        queries, dense, folders["bm25"], root / "compare", root / "querysets", root / "pool.parquet", DEPTH
    )
    return root, folders, pool


def _run(folder, variant="torch"):
    frame = pl.read_parquet(folder / paths.JUDGING_RUNS)
    return frame_to_run(frame.filter(pl.col("variant") == variant))


def _pooled_ids(pool, system, query_id):
    part = pool.filter((pl.col("system") == system) & (pl.col("query_id") == query_id)).sort("rank")
    return part["corpus_id"].to_list()


def test_every_retriever_ranks_the_team_queries_over_the_test_passages(pooled):
    root, folders, _ = pooled
    test_ids = set(pl.read_parquet(root / "querysets" / "test" / "corpus.parquet")["corpus_id"])
    for name in ("baseline", "lora", "bm25"):
        runs = pl.read_parquet(folders[name] / paths.JUDGING_RUNS)
        # the duplicate line and the comment are gone; BM25 returns nothing for "unseen words"
        assert runs["query_id"].n_unique() == (2 if name == "bm25" else 3)
        assert set(runs["id"]) <= test_ids


def test_the_pool_holds_each_system_top_depth_and_the_hybrids_fused_as_compare_fuses(pooled):
    root, folders, pool = pooled
    systems = set(pool["system"])
    assert {"bm25", "m/baseline/torch/dense", "m/lora/torch/dense", "m/lora/torch/hybrid-rrf"} <= systems
    qid = read_team_queries(root / "queries.txt")["query_id"][1]
    dense, lexical = _run(folders["baseline"]), _run(folders["bm25"], "lexical")
    assert _pooled_ids(pool, "m/baseline/torch/dense", qid) == [c for c, _ in dense[qid][:DEPTH]]
    assert _pooled_ids(pool, "bm25", qid) == [c for c, _ in lexical[qid][:DEPTH]]
    rows = pl.read_parquet(root / "compare" / "rows.parquet")
    weight = rows.filter((pl.col("method") == "baseline") & (pl.col("retriever") == "hybrid-weighted"))[
        "fusion_weight"
    ][0]
    queries = dense.keys() | lexical.keys()
    fused = fusion.fuse(
        {q: dense.get(q, []) for q in queries}, {q: lexical.get(q, []) for q in queries}, "weighted", weight
    )
    assert _pooled_ids(pool, "m/baseline/torch/hybrid-weighted", qid) == [c for c, _ in fused[qid][:DEPTH]]
    assert pool["text"].null_count() == 0 and pool["query"].null_count() == 0
    assert pool.group_by("system", "query_id").len()["len"].max() <= DEPTH


def test_a_query_no_word_of_which_is_in_the_corpus_has_no_bm25_hits(pooled):
    root, _, pool = pooled
    unseen = read_team_queries(root / "queries.txt").filter(pl.col("text") == "unseen words")["query_id"][0]
    assert not _pooled_ids(pool, "bm25", unseen)
    assert len(_pooled_ids(pool, "m/baseline/torch/dense", unseen)) == DEPTH


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("# only a comment\n\n", "no query"),
        ("ok\n" + "x" * 501 + "\n", r":2: 501 characters"),
    ],
)
def test_a_bad_queries_file_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "q.txt"
    path.write_text(content)
    with pytest.raises(TeamQueryError, match=message):
        read_team_queries(path)


def test_a_queries_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "q.txt"
    path.write_bytes("пожар".encode("cp1251"))
    with pytest.raises(TeamQueryError, match="not UTF-8"):
        read_team_queries(path)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=12))
def test_any_queries_file_gives_distinct_stable_ids_or_a_clear_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("q") / "q.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        frame = read_team_queries(path)
    except TeamQueryError as err:
        assert str(path) in str(err)
        return
    assert frame["query_id"].n_unique() == frame.height
    assert all(t and t == " ".join(t.split()) and not t.startswith("#") for t in frame["text"])
    assert read_team_queries(path).equals(frame)  # stable


def test_typed_queries_join_the_file_s_without_duplicates(tmp_path):
    from archive_encoders.datasets.team_queries import query_id, team_queries

    path = tmp_path / "q.txt"
    path.write_text("пожар в Москве\nLake Baikal\n", encoding="utf-8")
    frame = team_queries(path, typed=["lake  baikal", "Lake Baikal", "Волга  в 1840 году"])
    # "lake baikal" differs from the file's only in case: one query, the file's text kept
    assert frame["text"].to_list() == ["пожар в Москве", "Lake Baikal", "Волга в 1840 году"]
    assert frame["query_id"].to_list()[2] == query_id("Волга в 1840 году")
    assert team_queries(None, typed=["only typed"])["text"].to_list() == ["only typed"]
    with pytest.raises(TeamQueryError, match="no query"):
        team_queries(None, typed=[])
    with pytest.raises(TeamQueryError, match="typed on the judging page: an empty query"):
        team_queries(path, typed=["  "])
