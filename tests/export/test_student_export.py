"""A distilled student with fewer layers than its teacher: trained (MSE to the teacher, then MNRL on the
triplets), exported like any model, and served torch-free from its ONNX export."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from support.onnx_helpers import random_texts
from support.serving_helpers import last_json, run_without_torch

from archive_encoders.config import ModelSpec
from archive_encoders.export.onnx import export
from archive_encoders.models import load_sentence_transformer
from archive_encoders.train import run as tr
from archive_encoders.train.teachers import EMBEDDING_SCHEMA
from archive_encoders.vectors import cosines

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = {"batch_size": 8, "mini_batch_size": 8, "learning_rate": 1e-3, "warmup_ratio": 0.0}
DISTILL = {
    "type": "distill", **STEPS, "max_steps": 2, "teacher": "tiny", "student_layers": 1,
    "then_mnrl": True, "mnrl": {**STEPS, "max_steps": 1, "mini_batch_size": 4},
}  # fmt: skip


def _spec(path) -> dict:
    return {"name": "tiny", "path": str(path), "max_seq_length": 32}


@pytest.fixture(scope="module")
def student(tiny_model, tmp_path_factory):
    """The tiny 2-layer model distilled into a 1-layer student: teacher embeddings of 16 passages and 16
    queries (the teacher is the tiny model itself), 8 triplets for the MNRL phase."""
    root = tmp_path_factory.mktemp("student")
    teacher = load_sentence_transformer(ModelSpec.from_config(_spec(tiny_model)), device="cpu")
    passages, queries = (
        random_texts(16, seed=4, min_words=8, max_words=30),
        random_texts(16, seed=5, max_words=6),
    )
    pl.DataFrame(
        {
            "text": passages + queries,
            "role": ["passage"] * 16 + ["query"] * 16,
            "kind": [None] * 16 + ["keyword"] * 16,
            "embedding": teacher.encode(passages + queries).tolist(),
        },
        schema=EMBEDDING_SCHEMA,
    ).write_parquet(root / "teacher.parquet")
    pl.DataFrame(
        {
            "anchor": queries[:8],
            "positive": passages[:8],
            "negative": passages[8:],
            "kind": ["keyword"] * 8,
            "doc_id": [f"doc{i}" for i in range(8)],
            "cluster_id": [f"doc{i}" for i in range(8)],
            "chunk_index": [0] * 8,
        }
    ).write_parquet(root / "triplets.parquet")
    params = {**DISTILL, "teacher_model": _spec(tiny_model)}
    inputs = {"teacher_embeddings": root / "teacher.parquet", "triplets": root / "triplets.parquet"}
    out = root / "model"
    metrics = tr.train(_spec(tiny_model), params, inputs, out, seed=13, device="cpu", method_name="distill")
    return out, metrics


def test_student_has_fewer_layers_and_trains_both_phases(student, tiny_model):
    out, metrics = student
    layers = json.loads((out / "config.json").read_text())["num_hidden_layers"]
    teacher_layers = json.loads((tiny_model / "config.json").read_text())["num_hidden_layers"]
    assert layers == 1 < teacher_layers
    assert [p["phase"] for p in metrics["phases"]] == ["distill", "mnrl"]
    assert metrics["data"] == {"teacher_embeddings": 32, "triplets": 8}


def test_exported_student_encodes_without_torch(student, tmp_path):
    out, _ = student
    onnx_dir = tmp_path / "onnx"
    export(out, onnx_dir, _spec(out), {"fidelity_samples": 8}, sample_texts=random_texts(24, seed=6),
           seed=3, method="distill")  # fmt: skip
    texts = ["the archive letter", "война и мир", "winter river"]
    reference = load_sentence_transformer(ModelSpec.from_config(_spec(out)), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    script = f"""
import json, sys
from archive_encoders.encoders.loader import load_encoder
out = {{}}
for variant in ("onnx-fp32", "onnx-int8"):
    enc = load_encoder(variant, {str(onnx_dir)!r}, {{}})
    out[variant] = enc.encode_passages({texts!r}).tolist()
out["torch"] = sys.modules.get("torch") is not None
print(json.dumps(out))
"""
    result = run_without_torch(script, tmp_path)
    assert result.returncode == 0, result.stderr
    served = last_json(result.stdout)
    assert served["torch"] is False
    assert np.asarray(served["onnx-int8"]).shape == reference.shape
    assert cosines(np.asarray(served["onnx-fp32"]), reference).min() > 0.999


def test_a_student_with_frozen_embeddings_trains_its_layers_but_keeps_its_teacher_s_vocabulary(
    student, tiny_model, tmp_path
):
    from safetensors.numpy import load_file

    out, _ = student
    params = {
        "type": "distill", **STEPS, "max_steps": 2, "teacher": "tiny", "student_layers": 1,
        "freeze_embeddings": True, "teacher_model": _spec(tiny_model),
    }  # fmt: skip
    frozen = tmp_path / "frozen"
    metrics = tr.train(
        _spec(tiny_model), params, {"teacher_embeddings": out.parent / "teacher.parquet"}, frozen,
        seed=13, device="cpu", method_name="distill",
    )  # fmt: skip
    teacher, trained = load_file(tiny_model / "model.safetensors"), load_file(frozen / "model.safetensors")
    vocabulary = next(name for name in trained if name.endswith("word_embeddings.weight"))
    np.testing.assert_array_equal(trained[vocabulary], teacher[vocabulary])
    moved = [n for n in trained if n in teacher and not np.array_equal(trained[n], teacher[n])]
    assert vocabulary not in moved and any(".layer.0." in n for n in moved)  # the kept layer learned
    phase = metrics["phases"][0]
    assert phase["total_params"] - phase["trainable_params"] == trained[vocabulary].size
    assert metrics["hyperparameters"]["freeze_embeddings"] is True
