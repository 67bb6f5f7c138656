"""Evaluation: exact top-k, documents by their best passage, STS parsing, every variant on every query set
in one job (the tiny model), BM25 in the same layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from support.eval_fixtures import LookupEncoder, write_sets

from archive_encoders.datasets import querysets as qs
from archive_encoders.encoders.loader import load_encoder
from archive_encoders.encoders.memo import MemoEncoder
from archive_encoders.evaluate.dense import evaluate_model, evaluate_variant, read_sts
from archive_encoders.evaluate.lexical import evaluate_lexical
from archive_encoders.evaluate.metrics import RETRIEVAL_METRICS
from archive_encoders.evaluate.ranking import DocumentRanker, dense_run, top_k
from archive_encoders.evaluate.scoring import read_sets
from archive_encoders.vectors import spearman

FIXTURES = Path(__file__).parents[1] / "fixtures"
STS_SMALL = FIXTURES / "sts_small.csv"
SETTINGS = {"batch_size": 8, "bootstrap_samples": 100, "sts": [], "probe": {}}


# --- exact top-k ---


def test_top_k_ranks_by_cosine_and_breaks_ties_by_position():
    corpus = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [-1, 0]], dtype=np.float32)
    queries = np.array([[2, 0], [0, 1]], dtype=np.float32)  # unnormalised: cosine, not dot product
    idx, scores = top_k(queries, corpus, k=3)
    assert idx.tolist() == [[0, 2, 3], [1, 3, 0]]
    np.testing.assert_allclose(scores[0], [1, 1, np.sqrt(0.5)], rtol=1e-6)
    idx, _ = top_k(queries, corpus, k=10)  # k beyond the corpus: everything, ranked
    assert idx.shape == (2, 5) and idx[0].tolist() == [0, 2, 3, 1, 4]


def test_top_k_tie_at_the_cut_off_keeps_the_earliest_passages():
    corpus = np.tile([[0.0, 1.0]], (50, 1))
    corpus[40] = [1.0, 0.0]
    idx, _ = top_k(np.array([[0.0, 1.0]]), corpus, k=3, chunk_size=1)
    assert idx.tolist() == [[0, 1, 2]]


def test_documents_are_ranked_by_their_best_passage():
    corpus = np.array([[1, 0], [0.6, 0.8], [0, 1], [0.8, 0.6]], dtype=np.float32)
    ranker = DocumentRanker(["b", "a", "b", "c"])  # passages 0 and 2 belong to b
    run = dense_run(["q"], np.array([[0.0, 1.0]]), ["p0", "p1", "p2", "p3"], corpus, ranker)
    assert [doc for doc, _ in run["q"]] == ["b", "a", "c"]  # b's best passage (p2) scores 1.0
    assert run["q"][0][1] == pytest.approx(1.0) and run["q"][1][1] == pytest.approx(0.8)


# --- STS files ---


def test_read_sts_accepts_header_no_header_crlf_bom_and_parquet(tmp_path):
    reference = read_sts(STS_SMALL)
    assert reference.columns == ["s1", "s2", "score"] and reference.height == 8
    assert reference["s1"][1] == "The author, a priest, wrote about village life."  # quoted comma
    assert reference["score"].to_list()[:2] == pytest.approx([4.8 / 5, 3.6 / 5])

    lines = STS_SMALL.read_text(encoding="utf-8").splitlines()
    variants = {
        "no_header.csv": "\n".join(lines[1:]) + "\n",
        "crlf.csv": "\r\n".join(lines) + "\r\n",
        "crlf_no_header.csv": "\r\n".join(lines[1:]),
        "bom.csv": "\ufeff" + "\n".join(lines) + "\n\n",  # BOM and a trailing blank line
    }
    for name, text in variants.items():
        (tmp_path / name).write_bytes(text.encode("utf-8"))
        assert read_sts(tmp_path / name).equals(reference), name

    reference.with_columns(pl.col("score") * 5).write_parquet(tmp_path / "sts.parquet")
    assert_frame_equal(read_sts(tmp_path / "sts.parquet"), reference)
    assert read_sts(tmp_path / "sts.parquet", max_score=10)["score"][0] == pytest.approx(0.48)


def test_read_sts_rejects_wrong_scale_and_malformed_rows(tmp_path):
    with pytest.raises(ValueError, match="max_score=1"):
        read_sts(STS_SMALL, max_score=1)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,3\nonly two,fields\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 2"):
        read_sts(bad)
    bad.write_text("left,right,gold\na,b,3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        read_sts(bad)
    pl.DataFrame({"a": ["x"], "b": ["y"], "score": [1.0]}).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="s1"):
        read_sts(tmp_path / "bad.parquet")


# --- every variant on every set ---


def test_matching_embeddings_give_perfect_scores_and_overrides_are_what_is_ranked(tmp_path):
    write_sets(tmp_path)
    rng = np.random.default_rng(1)
    table = {}
    for split in ("test", "val"):
        for i in range(12):
            # the ICT query matches the *cut* passage: only the override text can make it rank first
            table[f"{split} cut passage {i}"] = rng.normal(size=256)
            table[f"{split} ict query {i}"] = table[f"{split} cut passage {i}"]
            # the title query matches the middle passage of its book: its book ranks first
            table[f"{split} passage {3 * i + 1} about topic {(3 * i + 1) % 7}"] = rng.normal(size=256)
            table[f"{split} title query {i}"] = table[
                f"{split} passage {3 * i + 1} about topic {(3 * i + 1) % 7}"
            ]
    encoder = LookupEncoder(table)
    groups = read_sets(tmp_path)
    result, scored, embedded = evaluate_variant(encoder, groups, [], SETTINGS, seed=0)
    for split in ("test", "val"):
        for name in ("ict", "title"):
            summary = result["query_sets"][split][name]
            assert summary["n_queries"] == 12 and summary["n_groups"] == 12
            for metric in RETRIEVAL_METRICS:
                assert summary["metrics"][metric] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}, (
                    name,
                    metric,
                )
    title_run = next(s for s in scored if s.query_set.name == "title" and s.query_set.split == "test").run
    assert title_run["title0"][0][0] == "test-d0"  # documents, not passages
    assert embedded["test"].shape == (36, 256)
    # each split's corpus is encoded once (36), its 12 overrides once, each set's queries once
    assert sorted(encoder.calls) == sorted([36, 12, 12, 12] * 2)


def test_unknown_variant_is_refused(tiny_model):
    with pytest.raises(ValueError, match="variant"):
        load_encoder("onnx-fp16", tiny_model, {"name": "tiny", "path": str(tiny_model)})


def test_a_memo_encoder_encodes_each_distinct_text_once_and_returns_the_same_embeddings(tiny_model):
    spec = {"name": "tiny", "path": str(tiny_model), "query_prefix": "query: ", "passage_prefix": "passage: "}
    direct = load_encoder("torch", tiny_model, spec)
    memo = MemoEncoder(load_encoder("torch", tiny_model, spec))
    passages = ["a passage", "another, longer passage of the corpus", "a passage", "a third one"]
    got = memo.encode_passages(passages, batch_size=2)
    np.testing.assert_allclose(got, direct.encode_passages(passages), atol=1e-6)
    assert (memo.encoded, memo.requested) == (3, 4)
    # the same text as a query has another prefix, so another embedding: encoded, not answered from memory
    query = memo.encode_queries(["a passage"])
    np.testing.assert_allclose(query, direct.encode_queries(["a passage"]), atol=1e-6)
    assert not np.allclose(query[0], got[0])
    again = memo.encode_passages(["a third one", "a passage"])
    np.testing.assert_array_equal(again, got[[3, 0]])
    assert (memo.encoded, memo.requested) == (4, 7)
    assert memo.encode_passages([]).shape[0] == 0
    corpus = memo.encode_passages(["fresh one", "fresh two"])  # all new: the memo's own rows, read-only
    with pytest.raises(ValueError, match="read-only"):
        corpus[0, 0] = 0.0


def test_onnx_variants_load_through_onnx_encoder(monkeypatch, tmp_path):
    """The ONNX variants use the deployable encoder with its variant names and the job's threads."""
    import archive_encoders.encoders.onnx as onnx_encoder

    calls = []

    class RecordingEncoder:
        def __init__(self, folder, variant="int8", threads=None, device="cpu"):
            calls.append((folder, variant, threads))

    monkeypatch.setattr(onnx_encoder, "OnnxEncoder", RecordingEncoder)
    spec = {"name": "tiny", "path": "x"}
    assert isinstance(load_encoder("onnx-fp32", tmp_path, spec, threads=2), RecordingEncoder)
    load_encoder("onnx-int8", tmp_path, spec, threads=3)
    assert calls == [(tmp_path, "fp32", 2), (tmp_path, "int8", 3)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, tiny_model):
    from support.synthetic_corpus import build_datasets

    return build_datasets(tmp_path_factory.mktemp("eval-data"), tiny_model)


def test_torch_variant_folder_agrees_with_sentence_transformers(tiny_model, synthetic, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    spec = {
        "name": "tiny",
        "path": "unused",
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "pooling": "mean",
        "max_seq_length": 64,
    }
    out = tmp_path / "results/eval/tiny/lora"
    sts = [{"name": "small", "path": str(STS_SMALL)}]
    settings = {**SETTINGS, "sts": sts, "compression": {"train_samples": 40, "dims": [16]}}
    tables = {"corpus": synthetic / "chunks.parquet", "splits": synthetic / "splits.parquet"}
    evaluate_model(
        {"model": tiny_model},
        ["torch"],
        synthetic / "querysets",
        [],
        out,
        spec,
        "lora",
        settings,
        13,
        tables=tables,
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compression.json", "per_query.parquet", "runs.parquet", "torch.json"]
    compression = json.loads((out / "compression.json").read_text())
    assert compression["train_embeddings"] == 40 and compression["variant"] == "torch"
    rows = {(r["query_set"], r["encoding"], r["rescored"]): r for r in compression["rows"]}
    assert rows[("ict", "float32", False)]["ndcg@10_kept_pct"] == pytest.approx(100.0)
    assert rows[("ict", "float32", False)]["bytes_per_vector"] == 32 * 4  # the tiny model is 32-d
    assert {q for q, _, _ in rows} == {"ict", "keyword"}  # chunk-level test sets only
    result = json.loads((out / "torch.json").read_text())
    assert (result["model"], result["method"], result["variant"]) == ("tiny", "lora", "torch")
    assert set(result["query_sets"]) == {"val", "test"}
    for sets in result["query_sets"].values():
        for summary in sets.values():
            for entry in summary["metrics"].values():
                assert 0.0 <= entry["ci_low"] <= entry["value"] <= entry["ci_high"] <= 1.0
    assert result["sts"]["small"]["n"] == 8
    pairs = read_sts(STS_SMALL)
    model = SentenceTransformer(str(tiny_model), device="cpu")
    model.max_seq_length = spec["max_seq_length"]
    emb = [model.encode(["query: " + t for t in pairs[c]], normalize_embeddings=True) for c in ("s1", "s2")]
    assert result["sts"]["small"]["spearman"] == pytest.approx(
        spearman((emb[0] * emb[1]).sum(1), pairs["score"])
    )
    runs = pl.read_parquet(out / "runs.parquet")
    assert runs.group_by("split", "query_set", "query_id").len()["len"].max() <= 100

    corpus, sets = qs.read_split(synthetic / "querysets", "test")
    queries, passages, relevant = sets["ict"].ir_inputs(corpus, "query: ", "passage: ")
    evaluator = InformationRetrievalEvaluator(
        queries, passages, relevant, mrr_at_k=[10], precision_recall_at_k=[10, 100], map_at_k=[100]
    )
    theirs = evaluator(model)  # the same spec: both encode the same tokens
    ours = result["query_sets"]["test"]["ict"]["metrics"]
    for metric in ("mrr@10", "recall@10", "recall@100", "map@100"):  # binary qrels here: NDCG agrees too
        assert ours[metric]["value"] == pytest.approx(theirs[f"cosine_{metric}"], abs=1e-6), metric


def test_bm25_row_has_the_layout_of_a_dense_row(synthetic, tmp_path):
    out = tmp_path / "bm25"
    result = evaluate_lexical(
        synthetic / "querysets", [], out, SETTINGS["bootstrap_samples"], ["en"], seed=13
    )
    assert sorted(p.name for p in out.iterdir()) == ["lexical.json", "per_query.parquet", "runs.parquet"]
    assert (result["model"], result["variant"]) == ("bm25", "lexical")
    assert result["latency"]["batch1_query_ms"]["p50"] > 0
    keyword = result["query_sets"]["test"]["keyword"]["metrics"]["ndcg@10"]["value"]
    assert keyword > 0.3  # the query's words are the passage's most distinctive ones


def test_no_query_set_at_all_is_a_clear_error_before_any_output(tmp_path):
    """A corpus too small for any held-out set and no user set: a message that says so, not a failed
    concatenation of no results after the models were loaded."""
    (tmp_path / "querysets" / "test").mkdir(parents=True)  # a split folder without a set in it
    with pytest.raises(ValueError, match="no query set to evaluate"):
        evaluate_lexical(tmp_path / "querysets", [], tmp_path / "bm25", 10, ["en"], seed=13)
    assert not (tmp_path / "bm25").exists()
