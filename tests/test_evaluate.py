"""Evaluation of one variant: exact top-k, STS parsing, the eval JSON on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from archive_encoders.encoders import load_encoder
from archive_encoders.evaluate import evaluate, evaluate_encoder, read_qrels, read_sts, top_k
from archive_encoders.metrics import RETRIEVAL_METRICS

FIXTURES = Path(__file__).parent / "fixtures"
STS_SMALL = FIXTURES / "sts_small.csv"
SETTINGS = {"batch_size": 8, "bootstrap_samples": 100}


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


def test_read_qrels_requires_integer_grades():
    frame = pl.DataFrame({"query_id": [1, 1, 2], "corpus_id": ["a", "b", "a"], "score": [2, 0, 1]})
    assert read_qrels(frame) == {"1": {"a": 2, "b": 0}, "2": {"a": 1}}
    with pytest.raises(ValueError, match="integers"):
        read_qrels(frame.with_columns(pl.lit(0.5).alias("score")))


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


# --- the whole evaluation ---


class LookupEncoder:
    """Precomputed embeddings: each text maps to a fixed vector (unknown texts to a random one)."""

    def __init__(self, table: dict[str, np.ndarray], dim: int = 256) -> None:
        self.table = table
        self.rng = np.random.default_rng(0)
        self.dim = dim

    def _encode(self, texts):
        vectors = [self.table.get(t, self.rng.normal(size=self.dim)) for t in texts]
        vectors = np.asarray(vectors, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def encode_queries(self, texts, batch_size=32):
        return self._encode(texts)

    def encode_passages(self, texts, batch_size=32):
        return self._encode(texts)


def retrieval_frames(n_queries: int = 12, n_corpus: int = 40):
    words = ["archive", "letter", "river", "church", "train", "poet"]
    words += ["ship", "museum", "winter", "market", "priest", "library"]
    corpus = pl.DataFrame(
        {
            "corpus_id": [f"c{i:03d}" for i in range(n_corpus)],
            "text": [
                f"{words[i % 12]} {words[(i * 5 + 1) % 12]} passage number {i}" for i in range(n_corpus)
            ],
            "doc_id": [f"doc{i // 4}" for i in range(n_corpus)],
            "title": [f"Title {i // 4}" for i in range(n_corpus)],
        }
    )
    queries = pl.DataFrame(
        {
            "query_id": [f"q{i:02d}" for i in range(n_queries)],
            "text": [f"{words[i]} query {i}" for i in range(n_queries)],
        }
    )
    # Query i: passage 3i is relevant (grade 2), passage 3i+1 too (grade 1) for even i; the last query is
    # judged with grade 0 only and so cannot be scored.
    rows = [(f"q{i:02d}", f"c{3 * i:03d}", 2) for i in range(n_queries - 1)]
    rows += [(f"q{i:02d}", f"c{3 * i + 1:03d}", 1) for i in range(0, n_queries - 1, 2)]
    rows += [(f"q{n_queries - 1:02d}", "c000", 0)]
    qrels = pl.DataFrame(rows, schema=["query_id", "corpus_id", "score"], orient="row")
    return queries, corpus, qrels


def test_precomputed_embeddings_that_match_give_perfect_scores():
    queries, corpus, qrels = retrieval_frames()
    rng = np.random.default_rng(1)
    table = {t: rng.normal(size=256) for t in corpus["text"]}  # 256-d: random pairs are near-orthogonal
    for i, text in enumerate(queries["text"]):
        # the query sits between its two relevant passages, nearer the grade-2 one
        table[text] = 0.7 * table[corpus["text"][3 * i]] + 0.3 * table[corpus["text"][3 * i + 1]]
    sts = [{"name": "small", "path": str(STS_SMALL), "max_score": 5}]
    result = evaluate_encoder(LookupEncoder(table), queries, corpus, qrels, sts, SETTINGS, seed=0)
    assert result["n_queries"] == 11 and result["n_corpus"] == 40  # q11 has no relevant passage
    for metric in RETRIEVAL_METRICS:
        assert result["retrieval"][metric] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}, metric
    assert result["sts"]["small"]["n"] == 8
    assert -1.0 <= result["sts"]["small"]["spearman"] <= 1.0


def test_qrels_naming_unknown_queries_fail_loudly():
    queries, corpus, qrels = retrieval_frames()
    with pytest.raises(ValueError, match="missing from queries"):
        evaluate_encoder(LookupEncoder({}), queries.head(3), corpus, qrels, [], SETTINGS, seed=0)


def test_unknown_variant_is_refused(tiny_model):
    with pytest.raises(ValueError, match="variant"):
        load_encoder("onnx-fp16", tiny_model, {"name": "tiny", "path": str(tiny_model)})


def test_torch_variant_writes_the_eval_json_and_agrees_with_sentence_transformers(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    queries, corpus, qrels = retrieval_frames()
    paths = {}
    for name, frame in (("queries", queries), ("corpus", corpus), ("qrels", qrels)):
        paths[name] = tmp_path / f"{name}.parquet"
        frame.write_parquet(paths[name])
    spec = {
        "name": "tiny",
        "path": "unused: replaced by the trained folder",
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
        "pooling": "mean",
        "max_seq_length": 64,
    }
    out = tmp_path / "results/eval/tiny/lora/torch.json"
    sts = [{"name": "small", "path": str(STS_SMALL), "max_score": 5}]
    evaluate(
        tiny_model,
        "torch",
        paths["queries"],
        paths["corpus"],
        paths["qrels"],
        sts,
        out,
        spec,
        SETTINGS,
        13,
        method="lora",
    )

    result = json.loads(out.read_text(encoding="utf-8"))
    assert set(result) == {
        "model",
        "method",
        "variant",
        "n_queries",
        "n_corpus",
        "retrieval",
        "sts",
        "diagnostics",
    }
    assert (result["model"], result["method"], result["variant"]) == ("tiny", "lora", "torch")
    assert (result["n_queries"], result["n_corpus"]) == (11, 40)
    assert set(result["retrieval"]) == set(RETRIEVAL_METRICS)
    for entry in result["retrieval"].values():
        assert set(entry) == {"value", "ci_low", "ci_high"}
        assert 0.0 <= entry["ci_low"] <= entry["value"] <= entry["ci_high"] <= 1.0
    assert result["sts"]["small"]["n"] == 8 and -1 <= result["sts"]["small"]["spearman"] <= 1
    assert -1.0 <= result["diagnostics"]["mean_random_pair_cosine"] <= 1.0
    assert sorted(p.name for p in out.parent.iterdir()) == ["torch.json"]  # no temporary left behind

    # The same model, prefixes and data through sentence-transformers' own evaluator (binary relevance,
    # so the graded qrels count as relevant when grade >= 1, exactly as in ranx).
    relevant: dict[str, set[str]] = {}
    for qid, cid, grade in qrels.iter_rows():
        if grade > 0:
            relevant.setdefault(qid, set()).add(cid)
    evaluator = InformationRetrievalEvaluator(
        dict(queries.iter_rows()),
        dict(corpus.select("corpus_id", "text").iter_rows()),
        relevant,
        ndcg_at_k=[1],
        mrr_at_k=[10],
        precision_recall_at_k=[10, 100],
        map_at_k=[100],
        accuracy_at_k=[1],
        query_prompt="query: ",
        corpus_prompt="passage: ",
        write_csv=False,
    )
    theirs = evaluator(SentenceTransformer(str(tiny_model), device="cpu"))
    for metric in ("mrr@10", "recall@10", "recall@100", "map@100"):  # NDCG differs: graded vs binary gain
        assert result["retrieval"][metric]["value"] == pytest.approx(theirs[f"cosine_{metric}"], abs=1e-6), (
            metric
        )


def test_onnx_variants_load_through_onnx_encoder(monkeypatch, tmp_path):
    """The ONNX variants use the deployable encoder with its variant names and the job's threads."""
    import archive_encoders.onnx_encoder as onnx_encoder

    calls = []

    class RecordingEncoder:
        def __init__(self, folder, variant="int8", threads=None, device="cpu"):
            calls.append((folder, variant, threads))

    monkeypatch.setattr(onnx_encoder, "OnnxEncoder", RecordingEncoder)
    spec = {"name": "tiny", "path": "x"}
    assert isinstance(load_encoder("onnx-fp32", tmp_path, spec, threads=2), RecordingEncoder)
    load_encoder("onnx-int8", tmp_path, spec, threads=3)
    assert calls == [(tmp_path, "fp32", 2), (tmp_path, "int8", 3)]
