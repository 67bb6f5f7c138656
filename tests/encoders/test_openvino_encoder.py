"""OpenVINO INT8 on the tiny model: the NNCF export passes its gate, and the encoder runs without torch."""

from __future__ import annotations

import numpy as np
import pytest
from support.onnx_helpers import exported_tiny, random_texts, tiny_spec
from support.serving_helpers import last_json, openvino_tiny, run_without_torch

from archive_encoders.encoders.loader import load_encoder
from archive_encoders.encoders.onnx import OnnxEncoder
from archive_encoders.encoders.openvino import OpenVinoEncoder
from archive_encoders.io import read_json


@pytest.fixture(scope="module")
def folder(tiny_model):
    return openvino_tiny(tiny_model)


def test_folder_and_gate(folder):
    names = {p.name for p in folder.iterdir()}
    assert {
        "model_int8.xml",
        "model_int8.bin",
        "tokenizer.json",
        "encoder_config.json",
        "fidelity.json",
    } <= names
    assert not [n for n in names if n.startswith(".")]
    config = read_json(folder / "encoder_config.json")
    assert config["files"] == {"int8": "model_int8.xml"} and config["inference_precision"] == "f32"
    assert (config["query_prefix"], config["model"], config["method"]) == ("query: ", "tiny", "baseline")
    assert config["int8"]["fake_quantize_ops"] > 0  # it is really quantized
    gate = read_json(folder / "fidelity.json")
    entry = gate["variants"]["openvino-int8"]
    assert gate["reference"] == "onnx-fp32" and entry["passed"] and entry["mean_cosine"] >= 0.99


def test_matches_the_fp32_graph_and_padding_is_exact(folder, tiny_model):
    encoder = OpenVinoEncoder(folder, threads=1)
    assert encoder.pad_multiple == 8
    texts = random_texts(5, seed=21, max_words=5) + random_texts(2, seed=22, min_words=80, max_words=90)
    reference = OnnxEncoder(exported_tiny(tiny_model), variant="fp32", threads=1).encode(texts)
    batched = encoder.encode(texts)
    singles = np.concatenate([encoder.encode([t]) for t in texts])
    assert batched.shape == (7, 32) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert ((batched * reference).sum(axis=1) >= 0.98).all()
    assert ((batched * singles).sum(axis=1) >= 0.999).all()  # masked padding leaves each text alone
    np.testing.assert_allclose(
        encoder.encode_queries(["a letter"]), encoder.encode(["query: a letter"]), atol=1e-6
    )
    assert encoder.encode([]).shape == (0, 32)


def test_loader_and_errors(folder):
    assert isinstance(load_encoder("openvino-int8", folder, tiny_spec(), threads=1), OpenVinoEncoder)
    with pytest.raises(ValueError, match="variant 'fp32' not exported"):
        OpenVinoEncoder(folder, variant="fp32")
    with pytest.raises(ValueError, match="CPU deployment"):
        OpenVinoEncoder(folder, device="cuda")


def test_accuracy_control_records_itself(tiny_model, tmp_path):
    from archive_encoders.export.openvino import export_openvino

    report = export_openvino(
        exported_tiny(tiny_model),
        tmp_path / "ov",
        tiny_spec(),
        {"calibration_samples": 6, "ranking_samples": 6, "max_cosine_drop": 0.001, "accuracy_control": True},
        {"fidelity_samples": 6},
        sample_texts=random_texts(20, seed=3),
        method="baseline",
        threads=1,
    )
    config = read_json(tmp_path / "ov" / "encoder_config.json")
    assert config["int8"]["accuracy_control"] == {"max_cosine_drop": 0.001}
    assert report["variants"]["openvino-int8"]["mean_cosine"] >= 0.99


def test_runs_where_torch_cannot_be_imported(folder, tmp_path):
    script = f"""
import json, sys
from archive_encoders.encoders.loader import load_encoder
enc = load_encoder("openvino-int8", {str(folder)!r}, {{}}, threads=1)
q = enc.encode_queries(["where is the letter?"])
print(json.dumps({{"shape": list(q.shape), "torch": sys.modules.get("torch") is not None,
                  "transformers": sys.modules.get("transformers") is not None}}))
"""
    result = run_without_torch(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout) == {"shape": [1, 32], "torch": False, "transformers": False}
