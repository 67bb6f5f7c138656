"""The index on a small corpus: build, reload, exact top-k, the search command, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from support.index_helpers import encode_for_index, write_corpus
from support.onnx_helpers import exported_tiny
from support.serving_helpers import last_json, run_without_torch, static_tiny

from archive_encoders.config import with_defaults
from archive_encoders.corpus.manifest import manifest_of_tables
from archive_encoders.index.build import build_index
from archive_encoders.index.search import IndexMismatchError, SearchError, SearchIndex
from archive_encoders.io import read_json, write_json


def build(tmp_path, variant, artefact, dtype="f32"):
    chunks, documents, rows = write_corpus(tmp_path)
    recommendation = tmp_path / "recommendation.json"
    row = {"model": "tiny", "method": "baseline", "variant": variant}
    write_json(recommendation, {**row, "retriever": "dense", "index": row, "artefact": str(artefact)})
    out = tmp_path / "index"
    settings = {"dtype": dtype, "recall_queries": 8, "batch_size": 8, "snippet_chars": 60}
    corpus = tmp_path / "corpus.json"
    manifest_of_tables(corpus, documents, chunks)
    embeddings = encode_for_index(recommendation, corpus, tmp_path / "embeddings")
    report = build_index(
        recommendation, corpus, embeddings, out, tmp_path / "index_report.json", settings, threads=1
    )
    return out, report, rows


@pytest.fixture(scope="module")
def static_index(tiny_model, tmp_path_factory):
    return build(tmp_path_factory.mktemp("static-index"), "static", static_tiny(tiny_model))


def test_build_writes_a_complete_measured_index(static_index, tmp_path):
    folder, report, rows = static_index
    assert {p.name for p in folder.iterdir()} == {
        "index.json",
        "vectors.usearch",
        "chunks.parquet",
        "encoder",
        "bm25",
    }
    manifest = read_json(folder / "index.json")
    assert (manifest["model"], manifest["method"], manifest["variant"]) == ("tiny", "baseline", "static")
    assert manifest["count"] == len(rows) and manifest["dimension"] == 16
    assert set(manifest["scripts"]) == {"LATIN", "CYRILLIC"}
    assert (manifest["retriever"], manifest["fusion"]) == ("dense", {"method": "rrf", "weight": None})
    assert report["measured"]["chunks"] == len(rows) and report["measured"]["index_disk_mb"] > 0.001
    assert report["per_million_chunks"]["index_disk_gb"] > 0 and report["cpu_flags"] is not None
    assert report["ann"]["recall@10_vs_exact_same_dtype"] >= 0.99
    assert 0 < report["query_latency_ms"]["p50"] <= report["query_latency_ms"]["p95"]
    meta = pl.read_parquet(folder / "chunks.parquet")
    assert meta.columns == ["row", "chunk_id", "doc_id", "title", "snippet"]
    assert meta["title"][0] == "Title 0" and meta["snippet"].str.len_chars().max() <= 61


def test_the_served_graph_searches_with_the_configured_expansion(static_index):
    from usearch.index import Index

    folder, _, _ = static_index
    configured = with_defaults("index", None)["expansion_search"]
    assert Index.restore(str(folder / "vectors.usearch"), view=True).expansion_search != configured
    assert SearchIndex(folder).graph.expansion_search == configured


def test_reloaded_index_returns_exact_top_k(static_index):
    folder, _, rows = static_index
    index = SearchIndex(folder, threads=1)
    texts = [r[2] for r in rows]
    corpus = index.encoder.encode_passages(texts)
    for query in ("river ice boat", "город история", "apple garden bee"):
        q = index.encoder.encode_queries([query])[0]
        exact = [rows[j][0] for j in np.lexsort((np.arange(len(rows)), -(corpus @ q)))[:5]]
        hits = index.search(query, 5)
        assert [h.chunk_id for h in hits] == exact
        assert hits[0].score == pytest.approx(float((corpus @ q).max()), abs=1e-3)


def test_onnx_int8_index_with_int8_vectors(tiny_model, tmp_path):
    folder, report, rows = build(tmp_path, "onnx-int8", exported_tiny(tiny_model), dtype="i8")
    assert read_json(folder / "index.json")["dtype"] == "i8"
    assert {p.name for p in (folder / "encoder").iterdir()} >= {"model_int8.onnx", "tokenizer.json"}
    assert report["ann"]["recall@10_vs_exact_same_dtype"] >= 0.9
    assert len(SearchIndex(folder, threads=1).search("letter archive", 3)) == 3


def test_torch_recommendation_is_served_by_its_onnx_export(tiny_model, tmp_path):
    # the report may recommend torch; an index serves the same vectors torch-free from the ONNX export
    work = tmp_path / "work"
    onnx = work / "results/onnx/tiny/baseline"
    shutil.copytree(exported_tiny(tiny_model), onnx)
    import os

    cwd = os.getcwd()
    os.chdir(work)
    try:
        folder, report, _ = build(work, "torch", "results/models/tiny/baseline")
    finally:
        os.chdir(cwd)
    assert (report["variant"], report["recommended_variant"]) == ("onnx-fp32", "torch")
    assert (folder / "encoder" / "model.onnx").is_file()


def test_mismatched_encoder_and_bad_queries_are_clear_errors(static_index, tiny_model, tmp_path):
    folder, _, _ = static_index
    other = tmp_path / "other"
    shutil.copytree(static_tiny(tiny_model, 40), other)  # same model/method, other weights
    with pytest.raises(IndexMismatchError, match="not the one the index .* was built with"):
        SearchIndex(folder, encoder_dir=other)
    config = read_json(other / "encoder_config.json")
    write_json(other / "encoder_config.json", {**config, "model": "e5-small"})
    with pytest.raises(IndexMismatchError, match="is e5-small/baseline, but the index"):
        SearchIndex(folder, encoder_dir=other)
    assert len(SearchIndex(folder, encoder_dir=folder / "encoder").search("winter", 2)) == 2  # its own copy
    index = SearchIndex(folder)
    with pytest.raises(SearchError, match="empty query"):
        index.search("   ")
    with pytest.raises(SearchError, match="no word the model"):
        index.search("☃☃ ☃")
    assert "script" in index.script_warning("日本語の手紙")
    assert index.script_warning("river") is None
    with pytest.raises(SearchError, match="not a search index"):
        SearchIndex(tmp_path)


def test_search_command_finds_the_source_passage_without_torch(static_index, tmp_path):
    folder, _, rows = static_index
    source = rows[9]  # a passage of the second topic
    query = " ".join(source[2].split()[:8])
    cli = ["-m", "archive_encoders.index.cli", "search", "--index", str(folder), "--json", "-k", "3", query]
    result = run_without_torch("", tmp_path, *cli)
    assert result.returncode == 0, result.stderr
    out = last_json(result.stdout)
    assert out["hits"][0]["doc_id"] == source[1] and source[0] in [h["chunk_id"] for h in out["hits"]]
    assert set(out["hits"][0]) == {"rank", "score", "chunk_id", "doc_id", "title", "snippet"}
    text = run_without_torch("", tmp_path, *cli[:5], query)
    assert text.returncode == 0 and "Title 1" in text.stdout
    for bad, message in ((" ", "empty query"), ("☃☃", "no word the model")):
        failed = run_without_torch("", tmp_path, *cli[:5], bad)
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr
    missing = run_without_torch(
        "", tmp_path, "-m", "archive_encoders.index.cli", "search", "--index", str(tmp_path), "x"
    )
    assert missing.returncode == 2 and "not a search index" in missing.stderr


def test_a_unigram_vocabulary_s_unknown_token_is_found_and_refuses_an_unknown_only_query():
    from tokenizers import Tokenizer, models, pre_tokenizers

    from archive_encoders.encoders.static import unknown_token_id
    from archive_encoders.index.search import unknown_only

    pieces = [("<pad>", 0.0), ("<unk>", 0.0), ("▁", -2.0), ("▁river", -1.0), ("▁snow", -1.0)]
    pieces += [(c, -4.0) for c in "rivesnow"]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=1, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    unk = unknown_token_id(tokenizer)  # XLM-R's kind: the id is in the model's JSON, not an attribute
    assert unk == 1
    assert tokenizer.encode("☃☃ ☃").ids == [2, 1, 2, 1]  # boundary, unknown, boundary, unknown
    assert unknown_only(tokenizer, "☃☃ ☃", unk)  # word boundaries and unknown pieces only
    assert not unknown_only(tokenizer, "river ☃", unk)
    assert not unknown_only(tokenizer, "☃", None)  # no unknown token: nothing is unknown-only
