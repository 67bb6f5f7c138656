"""The corpus encoded one shard at a time (rule encode_shard) gives the vectors one process gives, and an
index assembled from those shard files serves what an index built in one go serves."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from support.index_helpers import encode_for_index
from support.onnx_helpers import exported_tiny, tiny_spec
from support.serving_helpers import topic_corpus

from archive_encoders.corpus.manifest import manifest_of_tables, write_manifest
from archive_encoders.encoders.loader import load_encoder
from archive_encoders.encoders.shard_embeddings import (
    by_shard,
    encode_corpus_shards,
    encode_shard,
    open_shard_embeddings,
)
from archive_encoders.index.build import build_index, corpus_encoding
from archive_encoders.index.search import SearchIndex
from archive_encoders.index.storage import new_graph
from archive_encoders.io import write_json

SETTINGS = {"dtype": "f32", "recall_queries": 8, "batch_size": 4, "snippet_chars": 80}
QUERIES = ("river ice boat", "город история", "apple garden bee", "letter river garden", "winter война")


def shard_folder(folder, rows, empty_every: int = 0):
    """A one-shard corpus of (chunk_id, doc_id, text) rows; every `empty_every`-th text blanked."""
    folder.mkdir(parents=True)
    texts = [("" if empty_every and i % empty_every == 0 else r[2]) for i, r in enumerate(rows)]
    pl.DataFrame(
        {
            "chunk_id": [r[0] for r in rows],
            "doc_id": [r[1] for r in rows],
            "chunk_index": [int(r[0].split("-")[1]) for r in rows],
            "text": texts,
        }
    ).write_parquet(folder / "chunks.parquet")
    docs = sorted({r[1] for r in rows})
    pl.DataFrame({"doc_id": docs, "title": [f"Title {d}" for d in docs]}).write_parquet(
        folder / "documents.parquet"
    )
    return manifest_of_tables(folder / "corpus.json", folder / "documents.parquet", folder / "chunks.parquet")


@pytest.fixture()
def three_shards(tmp_path):
    """The topic corpus (doc0-doc3, 6 chunks each) in three shards (doc0; doc1 and doc2; doc3), two blank
    chunks in the first, doc3 a duplicate scan of doc0."""
    rows = topic_corpus()
    parts = [[r for r in rows if r[1] in pair] for pair in (("doc0",), ("doc1", "doc2"), ("doc3",))]
    manifests = [
        shard_folder(tmp_path / f"s{i}", part, empty_every=5 if i == 0 else 0) for i, part in enumerate(parts)
    ]
    kinds = ("documents", "chunks", "rejected", "signatures")
    files = {k: [tmp_path / f"s{i}" / m["shards"][0][k] for i, m in enumerate(manifests)] for k in kinds}
    docs = [f"doc{t}" for t in range(4)]
    pl.DataFrame(
        {
            "doc_id": docs,
            "cluster_id": [*docs[:3], "doc0"],
            "duplicate_of": [None] * 3 + ["doc0"],
            "reason": [None] * 3 + ["near-duplicate"],
        }
    ).write_parquet(tmp_path / "dedupe.parquet")
    write_manifest(tmp_path / "corpus.json", ["00000", "00001", "00002"], files, tmp_path / "dedupe.parquet")
    return tmp_path / "corpus.json", rows


def test_shard_encodings_are_the_one_process_encoding(tiny_model, three_shards, tmp_path):
    corpus, rows = three_shards
    onnx = exported_tiny(tiny_model)
    files = encode_corpus_shards(
        corpus, tmp_path / "emb", "onnx-fp32", onnx, tiny_spec(), "baseline", batch_size=3
    )
    shards = by_shard(files["vectors"], files["ids"], files["meta"])
    assert list(shards) == ["00000", "00001", "00002"]
    # every non-empty chunk of each shard, duplicates included, in corpus order
    blank = {rows[0][0], rows[5][0]}
    expected_ids = [r[0] for r in rows if r[0] not in blank]
    assert sum((s.chunk_ids.to_list() for s in shards.values()), []) == expected_ids
    encoder = load_encoder("onnx-fp32", onnx, tiny_spec(), threads=1)
    text_of = {r[0]: r[2] for r in rows}
    one_process = encoder.encode_passages([text_of[c] for c in expected_ids], batch_size=32)
    sharded = np.vstack([np.asarray(s.vectors) for s in shards.values()])
    cosines = (
        np.sum(sharded * one_process, axis=1)
        / np.linalg.norm(sharded, axis=1)
        / np.linalg.norm(one_process, axis=1)
    )
    assert sharded.dtype == np.float32 and np.all(np.abs(cosines - 1) < 1e-6)
    meta = json.loads((tmp_path / "emb" / "00001.json").read_text())
    assert meta | {"encode_s": 0, "chunks_per_s": 0} == meta | {
        "shard": "00001",
        "count": 12,
        "dimension": one_process.shape[1],
        "variant": "onnx-fp32",
        "method": "baseline",
        "device": "cpu",
        "encode_s": 0,
        "chunks_per_s": 0,
    }


def test_a_shard_without_text_writes_an_empty_matrix_of_the_encoder_s_width(tiny_model, tmp_path):
    shard_folder(tmp_path / "s", [("c0-0", "doc0", "   "), ("c0-1", "doc0", "")])
    out = {k: tmp_path / f"00000.{k}" for k in ("npy", "parquet", "json")}
    meta = encode_shard(
        tmp_path / "s" / "shard_chunks.parquet",
        "00000",
        "onnx-fp32",
        exported_tiny(tiny_model),
        out["npy"],
        out["parquet"],
        out["json"],
        tiny_spec(),
        "baseline",
    )
    opened = open_shard_embeddings(out["npy"], out["parquet"], out["json"])
    assert meta["count"] == 0 and opened.vectors.shape == (0, meta["dimension"]) and meta["dimension"] > 0


def test_files_of_different_runs_and_missing_chunks_are_refused(tiny_model, three_shards, tmp_path):
    corpus, rows = three_shards
    files = encode_corpus_shards(
        corpus, tmp_path / "emb", "onnx-fp32", exported_tiny(tiny_model), tiny_spec(), "baseline"
    )
    shard = open_shard_embeddings(files["vectors"][1], files["ids"][1], files["meta"][1])
    with pytest.raises(
        ValueError, match=r"shard 00001: 1 chunk\(s\) of the corpus are not in them.*re-encode"
    ):
        shard.rows_of(["c1-0", "c9-9"])
    assert shard.rows_of(["c2-1", "c1-0"]).tolist() == [7, 0]
    with pytest.raises(ValueError, match="00000.npy.*of different runs"):
        open_shard_embeddings(files["vectors"][0], files["ids"][1], files["meta"][0])


def recommendation_of(folder, variant, artefact):
    row = {"model": "tiny", "method": "baseline", "variant": variant}
    path = folder / "recommendation.json"
    write_json(path, {**row, "retriever": "dense", "index": row, "artefact": str(artefact)})
    return path


def test_the_assembled_index_serves_what_one_built_in_one_go_serves(tiny_model, three_shards, tmp_path):
    """Three shards' files assembled: the same rows (duplicates dropped) and, for every query, the top 10
    of a graph built from the one-process vectors in a single add; the memory-mapped graph search.py opens
    answers as the same graph loaded into memory."""
    from usearch.index import Index

    corpus, rows = three_shards
    onnx = exported_tiny(tiny_model)
    recommendation = recommendation_of(tmp_path, "onnx-fp32", onnx)
    embeddings = encode_for_index(recommendation, corpus, tmp_path / "emb")
    build_index(
        recommendation, corpus, embeddings, tmp_path / "index", tmp_path / "r.json", SETTINGS, threads=1
    )
    index = SearchIndex(tmp_path / "index", threads=1)
    blank = {rows[0][0], rows[5][0]}
    kept = [r for r in rows if r[0] not in blank and r[1] != "doc3"]
    assert index.count == len(kept)

    encoder = load_encoder("onnx-fp32", onnx, tiny_spec(), threads=1)
    one_go = new_graph(encoder.dimension, "f32", connectivity=32, expansion_add=128, expansion_search=256)
    one_go.add(np.arange(len(kept), dtype=np.uint64), encoder.encode_passages([r[2] for r in kept]))
    loaded = Index.restore(str(tmp_path / "index" / "vectors.usearch"), view=False)
    for query in QUERIES:
        served = [hit.chunk_id for hit in index.search(query, 10, retriever="dense")]
        q = encoder.encode_queries([query])[0]
        assert served == [kept[int(k)][0] for k in one_go.search(q, 10).keys]
        assert [kept[int(k)][0] for k in loaded.search(q, 10).keys] == served


def test_the_build_refuses_embeddings_of_another_encoder(tiny_model, three_shards, tmp_path):
    corpus, _ = three_shards
    onnx = exported_tiny(tiny_model)
    embeddings = encode_for_index(recommendation_of(tmp_path, "onnx-fp32", onnx), corpus, tmp_path / "emb")
    other = recommendation_of(tmp_path, "onnx-int8", onnx)
    with pytest.raises(
        ValueError, match="embeddings are of tiny/baseline/onnx-fp32.*recommends tiny/baseline/onnx-int8"
    ):
        build_index(other, corpus, embeddings, tmp_path / "index", tmp_path / "r.json", SETTINGS, threads=1)
    assert not (tmp_path / "index").exists()
    partial = {kind: paths[::2] for kind, paths in embeddings.items()}  # shard 00001's files left out
    with pytest.raises(ValueError, match="shard 00001 of .* has no embeddings"):
        build_index(
            recommendation_of(tmp_path, "onnx-fp32", onnx),
            corpus,
            partial,
            tmp_path / "index",
            tmp_path / "r.json",
            SETTINGS,
            threads=1,
        )
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize(
    ("variant", "device", "encoded"),
    [
        ("onnx-int8", "cuda", "onnx-int8"),  # an INT8 row's vectors come from the INT8 model itself
        ("onnx-fp32", "auto", "onnx-fp32"),
        ("onnx-fp32", "cuda", "torch"),  # the same FP32 weights on the GPU (export gated at cosine 0.9999)
        ("torch", "cuda", "torch"),  # served as onnx-fp32, encoded by torch on the GPU
        ("torch", "cpu", "onnx-fp32"),
        ("static", "cuda", "static"),
    ],
)
def test_the_corpus_is_encoded_by_the_served_variant_or_its_torch_model_on_a_gpu(
    tmp_path, variant, device, encoded
):
    recommendation = recommendation_of(tmp_path, variant, tmp_path / "artefact")
    assert corpus_encoding(recommendation, device) == {
        "model": "tiny",
        "method": "baseline",
        "variant": encoded,
    }
    write_json(recommendation, {"retriever": "lexical", "index": None, "artefact": None})
    assert corpus_encoding(recommendation, device) is None  # build_index says why
