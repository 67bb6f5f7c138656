"""The comparison: one row per retriever and test set, hybrids, paired differences computed by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from support.eval_fixtures import fake_evaluations

from archive_encoders.evaluate.compare import compare
from archive_encoders.evaluate.stats import paired_difference

QUALITY = {
    ("baseline", "torch"): 2.0,
    ("baseline", "onnx-int8"): 2.0,
    ("lora", "torch"): 0.3,  # lora is much better than its base
    ("lora", "onnx-int8"): 0.35,
}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("compare")
    folders = fake_evaluations(root, monkeypatch, QUALITY)
    monkeypatch.undo()
    dense = [folders["baseline"], folders["lora"]]
    rows = compare(
        dense, folders["bm25"], root / "querysets", [], root / "compare", bootstrap_samples=300, seed=5
    )
    return root, rows


def test_one_row_per_retriever_and_test_set(compared):
    root, rows = compared
    keys = rows.select("model", "method", "variant", "retriever", "query_set").rows()
    assert len(keys) == len(set(keys))
    dense = {(m, me, v, s) for m, me, v, r, s in keys if r == "dense"}
    assert dense == {("m", me, v, s) for me, v in QUALITY for s in ("ict", "title")}
    for retriever in ("hybrid-rrf", "hybrid-weighted"):
        assert {(me, v, s) for _, me, v, r, s in keys if r == retriever} == {
            (me, v, s) for _, me, v, s in dense
        }
    assert {(m, r, s) for m, _, _, r, s in keys if r == "lexical"} == {
        ("bm25", "lexical", "ict"),
        ("bm25", "lexical", "title"),
    }
    assert len(keys) == 4 * 2 * 3 + 2
    assert sorted((root / "compare").iterdir()) == [
        root / "compare/per_query.parquet",
        root / "compare/rows.parquet",
    ]


def test_paired_differences_match_a_hand_computation(compared):
    root, rows = compared
    per_query = pl.read_parquet(root / "compare/per_query.parquet")

    def scores(method, variant, retriever, query_set):
        part = per_query.filter(
            (pl.col("method") == method)
            & (pl.col("variant") == variant)
            & (pl.col("retriever") == retriever)
            & (pl.col("query_set") == query_set)
        ).sort("query_id")
        return part["ndcg@10"].to_numpy(), part["group"].to_list()

    lora, groups = scores("lora", "torch", "dense", "ict")
    base, _ = scores("baseline", "torch", "dense", "ict")
    bm25, _ = scores("untrained", "lexical", "lexical", "ict")
    row = rows.filter(
        (pl.col("method") == "lora")
        & (pl.col("variant") == "torch")
        & (pl.col("retriever") == "dense")
        & (pl.col("query_set") == "ict")
    ).row(0, named=True)
    assert row["ndcg@10"] == pytest.approx(lora.mean())
    assert row["delta_vs_base"] == pytest.approx(lora.mean() - base.mean())
    assert row["delta_vs_bm25"] == pytest.approx(lora.mean() - bm25.mean())
    expected = paired_difference(lora, base, groups, 300, 5)
    assert (row["delta_vs_base_ci_low"], row["delta_vs_base_ci_high"]) == pytest.approx(
        (expected.low, expected.high)
    )
    assert row["delta_vs_base_ci_low"] > 0  # the better method's gain is established
    base_row = rows.filter((pl.col("method") == "baseline") & (pl.col("retriever") == "dense")).row(
        0, named=True
    )
    assert base_row["delta_vs_base"] is None  # the base itself has no base


def test_best_row_and_hybrids(compared):
    _, rows = compared
    for _, group in rows.group_by(["query_set"]):
        (name,) = set(group["best_row"])
        best = group.filter(
            pl.concat_str("model", "method", "variant", "retriever", separator="/") == name
        ).row(0, named=True)
        assert best["ndcg@10"] == group["ndcg@10"].max()  # ties: any of the best is a fair reference
        assert best["delta_vs_best"] == 0.0 and best["delta_vs_best_ci_low"] == 0.0
        assert (group["delta_vs_best"].drop_nulls() <= 1e-12).all()
    weighted = rows.filter(pl.col("retriever") == "hybrid-weighted")
    assert weighted["fusion_weight"].is_between(0, 1).all()
    assert rows.filter(pl.col("retriever") != "hybrid-weighted")["fusion_weight"].is_null().all()
    # good dense rows with a poor BM25: the weight chosen on val leans on the dense run
    lora = weighted.filter((pl.col("method") == "lora") & (pl.col("variant") == "torch"))
    assert (lora["fusion_weight"] >= 0.5).all()
    assert np.isfinite(rows["ndcg@10"].to_numpy()).all()


def test_a_query_bm25_found_nothing_for_still_gets_hybrids():
    from archive_encoders.datasets import querysets as qs
    from archive_encoders.evaluate.compare import hybrid_rows

    queries = pl.DataFrame(
        {"query_id": ["q1", "q2"], "text": ["a", "b"], "group": ["d1", "d2"], "kind": ["k", "k"]}
    )
    test = qs.QuerySet("s", "test", "chunk", "keyword", queries, {"q1": {"c1": 1}, "q2": {"c2": 1}})
    dense = {("test", "s"): {"q1": [("c1", 0.9)], "q2": [("c2", 0.8)]}}
    lexical = {("test", "s"): {"q1": [("c1", 3.0)]}}  # q2 has no rows in BM25's runs.parquet
    rows = hybrid_rows("m", "lora", "torch", dense, lexical, [], {"s": test})
    assert [r.retriever for r in rows] == ["hybrid-rrf"]  # no val sets: no weight, no weighted row
    assert rows[0].query_ids == ["q1", "q2"] and rows[0].scores["ndcg@10"].tolist() == [1.0, 1.0]
