"""Static embeddings on the tiny model: model2vec's format and numbers, torch-free inference."""

from __future__ import annotations

import numpy as np
import pytest
from support.onnx_helpers import random_texts, tiny_spec
from support.serving_helpers import last_json, run_without_torch, static_tiny

from archive_encoders.encoders.loader import load_encoder
from archive_encoders.encoders.static import StaticEncoder
from archive_encoders.export.static import pca, sif_weights
from archive_encoders.io import read_json


@pytest.mark.parametrize("max_vocabulary", [None, 40])
def test_embeddings_equal_model2vec_encode(tiny_model, max_vocabulary):
    from model2vec import StaticModel

    folder = static_tiny(tiny_model, max_vocabulary)
    texts = random_texts(12, seed=5) + ["", "☃☃☃", "a single word"]
    expected = StaticModel.from_pretrained(str(folder)).encode(texts)
    encoder = StaticEncoder(folder)
    got = encoder.encode(texts)
    assert got.shape == (15, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    singles = np.concatenate([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(singles, got, atol=1e-6)
    assert not got[12].any() and not got[13].any()  # no known token: a zero row, as in model2vec
    record = read_json(folder / "static.json")
    assert record["vocabulary"] == 30522 and record["dimension"] == 16
    assert record["distilled_tokens"] == (30522 if max_vocabulary is None else 40)


def test_restricted_vocabulary_ignores_rare_tokens(tiny_model):
    encoder = StaticEncoder(static_tiny(tiny_model, 40))
    assert encoder.mapping is not None and encoder.embedding.shape == (41, 16)
    assert not encoder.embedding[-1].any()  # the row every dropped token maps to
    kept = int(np.sum(encoder.mapping != 40))
    assert kept == 40


def test_pca_and_sif_by_hand():
    x = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    reduced = pca(x, 1)
    np.testing.assert_allclose(np.abs(reduced[:, 0]), [2, 2, 0, 0], atol=1e-6)  # the wide axis kept
    w = sif_weights(3, 0.5)
    p = np.array([1 / 2, 1 / 3, 1 / 4]) / (1 / 2 + 1 / 3 + 1 / 4)
    np.testing.assert_allclose(w, 0.5 / (0.5 + p), rtol=1e-6)
    assert w[0] < w[1] < w[2]  # frequent (low-rank) tokens weigh less


def test_loader_prefixes_and_device(tiny_model):
    folder = static_tiny(tiny_model)
    encoder = load_encoder("static", folder, tiny_spec(query_prefix="query: "))
    assert isinstance(encoder, StaticEncoder) and encoder.query_prefix == ""
    with pytest.raises(ValueError, match="CPU"):
        StaticEncoder(folder, device="cuda")


def test_runs_where_torch_cannot_be_imported(tiny_model, tmp_path):
    folder = static_tiny(tiny_model)
    script = f"""
import json, sys
from archive_encoders.encoders.loader import load_encoder
enc = load_encoder("static", {str(folder)!r}, {{}})
p = enc.encode_passages(["the letter is in the archive", "a river in winter"])
print(json.dumps({{"shape": list(p.shape), "torch": sys.modules.get("torch") is not None}}))
"""
    result = run_without_torch(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout) == {"shape": [2, 16], "torch": False}
