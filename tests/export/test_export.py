"""ONNX export on the tiny model: FP32 equals torch, INT8 passes the gate, the folder is complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from support.onnx_helpers import cls_copy, exported_tiny, random_texts, tiny_spec

from archive_encoders.encoders.onnx import OnnxEncoder
from archive_encoders.export.fidelity import FidelityError
from archive_encoders.export.onnx import export
from archive_encoders.io import read_json


def torch_embeddings(model_dir: Path, texts: list[str], spec: dict) -> np.ndarray:
    from archive_encoders.config import ModelSpec
    from archive_encoders.models import load_sentence_transformer

    model = load_sentence_transformer(ModelSpec.from_config({**spec, "path": str(model_dir)}))
    return model.encode(texts, prompt="", normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def cls_export(tiny_model, tmp_path_factory):
    model = cls_copy(tiny_model, tmp_path_factory.mktemp("cls") / "tiny-cls")
    out = tmp_path_factory.mktemp("cls-onnx") / "onnx"
    report = export(
        model,
        out,
        tiny_spec("cls"),
        {"fidelity_samples": 12},
        sample_texts=random_texts(30, seed=2),
        method="baseline",
    )
    return model, out, report


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_fp32_equals_torch_on_random_texts(pooling, tiny_model, cls_export):
    model, folder = (tiny_model, exported_tiny(tiny_model)) if pooling == "mean" else cls_export[:2]
    texts = random_texts(20, seed=11)
    expected = torch_embeddings(model, texts, tiny_spec(pooling))
    got = OnnxEncoder(folder, variant="fp32", threads=1).encode(texts)
    cosine = (expected * got).sum(axis=1)
    assert got.shape == expected.shape
    assert cosine.min() >= 0.9999


def test_fidelity_report_and_int8_gate(tiny_model, cls_export):
    for folder in (exported_tiny(tiny_model), cls_export[1]):
        report = read_json(folder / "fidelity.json")
        assert report["threshold"] == 0.99 and report["samples"] > 0
        fp32, int8 = report["variants"]["onnx-fp32"], report["variants"]["onnx-int8"]
        # Spearman is loose: a random tiny model's similarities are near-ties that FP32 noise reorders.
        assert fp32["passed"] and fp32["min_cosine"] >= 0.9999 and fp32["spearman"] > 0.99
        assert int8["passed"] and int8["mean_cosine"] >= 0.99 and int8["spearman"] > 0.9
        assert 0 < int8["size_mb"] < fp32["size_mb"]


def test_folder_contents(tiny_model):
    folder = exported_tiny(tiny_model)
    names = {p.name for p in folder.iterdir()}
    assert {
        "model.onnx",
        "model_int8.onnx",
        "tokenizer.json",
        "encoder_config.json",
        "fidelity.json",
    } <= names
    assert not [n for n in names if n.startswith(".")], "work files left in the export"
    config = read_json(folder / "encoder_config.json")
    assert config["pooling"] == "mean" and config["max_seq_length"] == 64
    assert (config["query_prefix"], config["passage_prefix"]) == ("query: ", "passage: ")
    assert config["files"] == {"fp32": "model.onnx", "int8": "model_int8.onnx"}
    # the fixed-padding trap: the shipped tokenizer.json pads to 128; the exported one must not pad
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    assert tokenizer["padding"] is None and tokenizer["truncation"]["max_length"] == 64


def test_reads_chunks_and_leaves_no_temp_files(tiny_model, tmp_path, monkeypatch):
    import polars as pl

    chunks = tmp_path / "chunks.parquet"
    doc_ids = [f"d{i % 4}" for i in range(20)]
    pl.DataFrame(
        {"chunk_id": ["a", "b"] * 10, "doc_id": doc_ids, "text": random_texts(20, seed=5)}
    ).write_parquet(chunks)
    splits = tmp_path / "splits.parquet"
    pl.DataFrame(
        {"doc_id": ["d0", "d1", "d2", "d3"], "split": ["train", "train", "val", "test"]}
    ).write_parquet(splits)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out" / "onnx"
    settings = {"fidelity_samples": 8, "int8_mode": "static", "optimize": True}
    # a relative out_dir, as Snakemake passes it
    report = export(
        tiny_model,
        "../out/onnx",
        tiny_spec(),
        settings,
        corpus=chunks,
        splits_path=splits,
        seed=1,
        method="baseline",
    )
    assert report["variants"]["onnx-int8"]["passed"]
    assert read_json(out / "encoder_config.json")["int8"]["mode"] == "static"
    assert list(cwd.iterdir()) == [], "ORT tools wrote into the working directory"
    assert sorted(p.name for p in out.parent.iterdir()) == ["onnx"]


def test_broken_fp32_fails_and_writes_nothing(tiny_model, tmp_path):
    out = tmp_path / "onnx"
    # CLS pooling in the graph against a mean-pooling torch model: the gate must catch the mismatch.
    with pytest.raises(FidelityError, match="onnx-fp32"):
        export(
            tiny_model,
            out,
            tiny_spec("cls"),
            {"fidelity_samples": 6},
            sample_texts=random_texts(12),
            method="baseline",
        )
    assert not out.exists() and os.listdir(tmp_path) == []


def test_low_int8_fidelity_is_flagged_or_fails(tiny_model, tmp_path):
    strict = {"fidelity_samples": 6, "min_mean_cosine": 1.0, "outlier_ratio": 0, "optimize": False}
    report = export(
        tiny_model,
        tmp_path / "flagged",
        tiny_spec(),
        strict,
        sample_texts=random_texts(12),
        method="baseline",
    )
    assert report["variants"]["onnx-int8"]["passed"] is False  # recorded, the export still succeeds
    with pytest.raises(FidelityError, match="fail_on_low_fidelity"):
        export(
            tiny_model,
            tmp_path / "failed",
            tiny_spec(),
            {**strict, "fail_on_low_fidelity": True},
            sample_texts=random_texts(12),
            method="baseline",
        )
    assert not (tmp_path / "failed").exists()


def test_calibration_reads_train_chunks_only(tmp_path):
    import polars as pl

    from archive_encoders.datasets.splits import train_chunk_texts

    chunks, splits = tmp_path / "chunks.parquet", tmp_path / "splits.parquet"
    pl.DataFrame(
        {
            "chunk_id": list("abcde"),
            "doc_id": ["tr", "te", "tr", "va", "tr"],
            "text": ["1", "2", "", "4", "5"],
        }
    ).write_parquet(chunks)
    pl.DataFrame({"doc_id": ["tr", "va", "te"], "split": ["train", "val", "test"]}).write_parquet(splits)
    assert train_chunk_texts(chunks, splits) == ["1", "5"]  # empty text dropped, val/test never read
    with pytest.raises(ValueError, match="splits_path"):
        export("unused", tmp_path / "out", tiny_spec(), corpus=chunks, method="baseline")
    pl.DataFrame({"doc_id": ["tr"], "split": ["test"]}).write_parquet(splits)
    with pytest.raises(ValueError, match="no document in the 'train' split"):
        train_chunk_texts(chunks, splits)


def _feeds(folder: Path, texts: list[str]) -> list[dict]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    feeds = []
    for text in texts:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    return feeds


def test_outlier_channel_splitting_keeps_the_fp32_outputs(tiny_model, tmp_path):
    import onnx
    import onnxruntime as ort

    from archive_encoders.export.onnx import split_outlier_channels

    folder = exported_tiny(tiny_model)
    split = tmp_path / "split.onnx"
    stats = split_outlier_channels(
        folder / "model.onnx", split, _feeds(folder, random_texts(12, seed=4)), ratio=1.5
    )
    assert stats["nodes"] > 0 and stats["extra_channels"] > 0  # a low ratio splits something
    assert len(onnx.load(str(split)).graph.node) > len(onnx.load(str(folder / "model.onnx")).graph.node)
    plain = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    widened = ort.InferenceSession(str(split), providers=["CPUExecutionProvider"])
    for feed in _feeds(folder, random_texts(8, seed=5)):  # texts the ranges were not measured on
        np.testing.assert_allclose(widened.run(None, feed)[0], plain.run(None, feed)[0], atol=2e-5)


def test_fp16_branch_writes_a_half_precision_graph_and_records_its_check(tiny_model, tmp_path):
    import onnx

    out = tmp_path / "onnx"
    report = export(
        tiny_model,
        out,
        tiny_spec(),
        {"fidelity_samples": 6, "fp16": True},
        sample_texts=random_texts(12),
        method="baseline",
    )
    assert read_json(out / "encoder_config.json")["files"]["fp16"] == "model_fp16.onnx"
    graph = onnx.load(str(out / "model_fp16.onnx"))
    types = {init.data_type for init in graph.graph.initializer if len(init.dims) > 1}
    assert onnx.TensorProto.FLOAT16 in types and onnx.TensorProto.FLOAT not in types  # weights in half
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64  # inputs unchanged
    entry = report["variants"]["onnx-fp16"]
    if entry.get("checked", True):  # CPU kernels ran it: it must be close to torch
        assert entry["mean_cosine"] > 0.99 and entry["passed"] is True
    else:  # FP16 contrib kernels exist for CUDA only: recorded as not checked, with the reason
        assert entry["passed"] is None and entry["reason"]
