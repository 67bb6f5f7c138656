"""The runtime encoder: dynamic axes, truncation, prefixes, order, and no torch anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.onnx_helpers import exported_tiny, random_texts

from archive_encoders.encoders.onnx import OnnxEncoder

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def folder(tiny_model) -> Path:
    return exported_tiny(tiny_model)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_batch_1_and_7_short_and_long(folder, variant):
    encoder = OnnxEncoder(folder, variant=variant, threads=1)
    texts = random_texts(6, seed=3, max_words=4) + random_texts(1, seed=4, min_words=300, max_words=300)
    batched = encoder.encode(texts)  # batch 7, padded to the longest, which is truncated at 64 tokens
    singles = np.concatenate([encoder.encode([t]) for t in texts])  # batch 1, unpadded
    assert batched.shape == (7, encoder.dimension) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # padding must not leak into the pooling: each text's embedding is independent of its batch
    assert ((batched * singles).sum(axis=1) >= (0.9999 if variant == "fp32" else 0.99)).all()
    small_batches = encoder.encode(texts, batch_size=3)
    assert ((small_batches * batched).sum(axis=1) >= 0.99).all()


def test_truncates_at_max_length(folder):
    encoder = OnnxEncoder(folder, variant="fp32", threads=1)
    long = random_texts(1, seed=8, min_words=200, max_words=200)[0]
    assert len(encoder.tokenizer.encode(long).ids) == encoder.max_seq_length == 64
    extra = long + " " + " ".join(["library"] * 50)  # differs only after the cut
    np.testing.assert_allclose(encoder.encode([long]), encoder.encode([extra]), atol=1e-6)


def test_prefixes_and_empty_input(folder):
    encoder = OnnxEncoder(folder, variant="fp32", threads=1)
    text = "a letter from the archive"
    np.testing.assert_allclose(encoder.encode_queries([text]), encoder.encode(["query: " + text]), atol=1e-6)
    np.testing.assert_allclose(
        encoder.encode_passages([text]), encoder.encode(["passage: " + text]), atol=1e-6
    )
    assert encoder.encode([]).shape == (0, encoder.dimension)
    with pytest.raises(ValueError, match="variant"):
        OnnxEncoder(folder, variant="int4")


def test_runs_where_torch_cannot_be_imported(folder, tmp_path):
    # sitecustomize runs at interpreter start: any `import torch` after it raises ImportError.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    script = textwrap.dedent(
        f"""
        import json, sys
        from archive_encoders.encoders.onnx import OnnxEncoder
        enc = OnnxEncoder({str(folder)!r}, variant="int8", threads=1)
        q = enc.encode_queries(["where is the letter?"])
        p = enc.encode_passages(["the letter is in the archive", "a river in winter"])
        try:
            import torch  # noqa: F401
            torch_importable = True
        except ImportError:
            torch_importable = False
        loaded = sys.modules.get("torch") is not None
        print(json.dumps({{"shape": list(p.shape), "score": float((q @ p.T)[0, 0]), "q": q[0].tolist(),
                          "torch_importable": torch_importable, "torch_loaded": loaded}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(SRC)])}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["shape"] == [2, 32]
    # the same embeddings as this process computes with the same encoder (which may import anything)
    here = OnnxEncoder(folder, variant="int8", threads=1)
    np.testing.assert_allclose(out["q"], here.encode_queries(["where is the letter?"])[0], atol=1e-5)
    expected = (
        here.encode_queries(["where is the letter?"])
        @ here.encode_passages(["the letter is in the archive"]).T
    )
    assert out["score"] == pytest.approx(float(expected[0, 0]), abs=1e-5)
    assert out["torch_importable"] is False and out["torch_loaded"] is False
