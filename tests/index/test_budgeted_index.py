"""An index that fits: the vector type chosen by index.memory_budget_gb, and a binary graph whose
candidates are rescored by cosine, served as the build measured it."""

from __future__ import annotations

import pytest
from support.index_helpers import encode_for_index, write_corpus
from support.serving_helpers import static_tiny

from archive_encoders.corpus.manifest import manifest_of_tables
from archive_encoders.index.build import build_index
from archive_encoders.index.search import BrokenIndex, SearchIndex
from archive_encoders.index.storage import RESCORE_SCALES, RESCORE_VECTORS, estimated_ram_bytes
from archive_encoders.io import read_json, write_json

QUERIES = ("river ice boat", "город история", "apple garden bee", "letter river garden", "winter война")
GIB = 2**30


@pytest.fixture(scope="module")
def topic_inputs(tiny_model, tmp_path_factory):
    """(recommendation, corpus, shard embeddings, rows) of the topic corpus and the tiny static model."""
    folder = tmp_path_factory.mktemp("budgeted")
    chunks, documents, rows = write_corpus(folder)
    row = {"model": "tiny", "method": "baseline", "variant": "static"}
    recommendation = folder / "recommendation.json"
    write_json(
        recommendation, {**row, "retriever": "dense", "index": row, "artefact": str(static_tiny(tiny_model))}
    )
    corpus = folder / "corpus.json"
    manifest_of_tables(corpus, documents, chunks)
    return recommendation, corpus, encode_for_index(recommendation, corpus, folder / "embeddings"), rows


def build(inputs, out, **settings):
    recommendation, corpus, embeddings, _ = inputs
    settings = {"recall_queries": 8, "batch_size": 8, **settings}
    return build_index(
        recommendation, corpus, embeddings, out / "index", out / "report.json", settings, threads=1
    )


def test_a_binary_index_rescores_its_candidates_and_ranks_as_float32(topic_inputs, tmp_path):
    """24 passages, 40 candidates per top 10: every passage is rescored, so the b1 index ranks as the
    float32 one does, up to near-ties (its int8 copies give cosines within 0.01: the i-th hit of each
    scores as the other's i-th)."""
    b1 = build(topic_inputs, tmp_path / "b1", dtype="b1")
    f32 = build(topic_inputs, tmp_path / "f32", dtype="f32")
    assert (
        b1["dtype"] == "b1"
        and b1["measured"]["rescore_disk_mb"] > 0
        and f32["measured"]["rescore_disk_mb"] == 0
    )
    assert b1["ann"]["recall@10_vs_exact_float32"] >= 0.9
    binary, floats = SearchIndex(tmp_path / "b1" / "index"), SearchIndex(tmp_path / "f32" / "index")
    assert read_json(tmp_path / "b1" / "index" / "index.json")["metric"].startswith("hamming")
    for query in QUERIES:
        served, expected = binary.search(query, 5, "dense"), floats.search(query, 5, "dense")
        assert {h.doc_id for h in served} == {h.doc_id for h in expected}
        assert all(abs(a.score - b.score) < 0.01 for a, b in zip(served, expected, strict=True))


def test_auto_takes_the_most_precise_type_the_budget_holds(topic_inputs, tmp_path):
    _, _, embeddings, _ = topic_inputs
    rows, dimension = 24, read_json(embeddings["meta"][0])["dimension"]
    need = {d: estimated_ram_bytes(rows, dimension, d, 32) / GIB for d in ("f32", "i8", "b1")}
    assert need["f32"] > need["i8"] > need["b1"]
    between = (need["i8"] + need["f32"]) / 2  # holds i8, not f32
    assert build(topic_inputs, tmp_path / "a", dtype="auto", memory_budget_gb=between)["dtype"] == "i8"
    assert (
        build(topic_inputs, tmp_path / "b", dtype="auto", memory_budget_gb=need["f32"] * 2)["dtype"] == "f32"
    )
    assert build(topic_inputs, tmp_path / "c", dtype="auto")["dtype"] == "i8"  # no budget: the default


def test_a_type_over_the_budget_is_refused_before_anything_is_written(topic_inputs, tmp_path):
    with pytest.raises(ValueError, match=r"index.memory_budget_gb is 1e-06 GiB, but index.dtype f32 needs"):
        build(topic_inputs, tmp_path, dtype="f32", memory_budget_gb=1e-6)
    with pytest.raises(ValueError, match=r"index.memory_budget_gb .* even b1 needs"):
        build(topic_inputs, tmp_path, dtype="auto", memory_budget_gb=1e-9)
    assert not (tmp_path / "index").exists() and not (tmp_path / "report.json").exists()


@pytest.mark.parametrize("name", [RESCORE_VECTORS, RESCORE_SCALES])
def test_a_binary_index_without_its_rescoring_files_is_broken(topic_inputs, tmp_path, name):
    build(topic_inputs, tmp_path, dtype="b1")
    (tmp_path / "index" / name).unlink()
    with pytest.raises(BrokenIndex, match=name):
        SearchIndex(tmp_path / "index")
