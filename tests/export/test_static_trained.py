"""The static-trained variant: the distilled static model trained on pairs learns what distillation
cannot, and is served torch-free like the distilled one."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file
from support.serving_helpers import last_json, run_without_torch, static_tiny

from archive_encoders.encoders.loader import load_encoder
from archive_encoders.export.static import sif_weights
from archive_encoders.export.static_trained import distilled_vectors, train_static
from archive_encoders.io import read_json

# Each query word finds passages about a word it shares nothing with: only training can link them.
LINKS = {
    "river": "boat",
    "king": "crown",
    "doctor": "hospital",
    "winter": "snow",
    "teacher": "school",
    "farmer": "wheat",
    "sailor": "ship",
    "painter": "canvas",
    "soldier": "rifle",
    "baker": "bread",
    "judge": "court",
    "miner": "coal",
    "pilot": "plane",
    "priest": "church",
    "hunter": "deer",
    "singer": "song",
}
# the same words around every target: a passage is told apart by its target word alone
FILLER = ["the", "old", "story", "tells", "how", "people", "lived", "there"]
SETTINGS = {"epochs": 10, "batch_size": len(LINKS), "learning_rate": 0.1, "warmup_ratio": 0.0}

pytestmark = pytest.mark.usefixtures("one_thread")


def passage(word: str, rng: random.Random) -> str:
    """`word` among the filler words every passage shares, in a shuffled order."""
    words = [word, *FILLER]
    rng.shuffle(words)
    return " ".join(words)


def write_triplets(path, rng: random.Random):
    rows = []
    targets = list(LINKS.values())
    for query, target in LINKS.items():
        negative = rng.choice([t for t in targets if t != target])
        rows.append({"anchor": query, "positive": passage(target, rng), "negative": passage(negative, rng)})
    pl.DataFrame(rows).write_parquet(path)
    return [r["positive"] for r in rows] + [r["negative"] for r in rows]


def top1_accuracy(encoder, rng: random.Random) -> float:
    """Each query word against passages of every target word (a new word order)."""
    passages = [passage(target, rng) for target in LINKS.values()]
    scores = encoder.encode_queries(list(LINKS)) @ encoder.encode_passages(passages).T
    return float(np.mean(np.argmax(scores, axis=1) == np.arange(len(LINKS))))


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("static-trained") / "static_trained"
    folder = tmp_path_factory.mktemp("pairs")
    texts = write_triplets(folder / "triplets.parquet", random.Random(1))
    distilled = static_tiny(tiny_model)
    record = train_static(distilled, folder / "triplets.parquet", out, SETTINGS, sample_texts=texts, seed=3)
    return distilled, out, record


def test_trained_static_finds_what_the_distilled_one_misses(trained):
    distilled, out, record = trained
    before = top1_accuracy(load_encoder("static", distilled, {}), random.Random(2))
    after = top1_accuracy(load_encoder("static-trained", out, {}), random.Random(2))
    assert before <= 0.25  # a random tiny model: the links are unknown to it
    assert after >= 0.9 and after > before
    assert record["steps"] == SETTINGS["epochs"] and record["pairs"] == len(LINKS)
    assert record["hard_negatives"] and record["variant"] == "static-trained"
    assert record["loss_curve"][-1]["loss"] < record["loss_curve"][0]["loss"]
    assert read_json(out / "encoder_config.json")["files"] == {"static": "model.safetensors"}


def test_trained_static_runs_where_torch_cannot_be_imported(trained, tmp_path):
    _, out, _ = trained
    script = f"""
import json, sys
from archive_encoders.encoders.loader import load_encoder
enc = load_encoder("static-trained", {str(out)!r}, {{}})
q = enc.encode_queries(["river", "king"])
p = enc.encode_passages(["a boat on the water", "the crown of gold"])
print(json.dumps({{"shape": list(p.shape), "hit": bool((q @ p.T).argmax(1).tolist() == [0, 1]),
                  "torch": sys.modules.get("torch") is not None}}))
"""
    result = run_without_torch(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout) == {"shape": [2, 16], "hit": True, "torch": False}


@pytest.mark.parametrize("max_vocabulary", [None, 40])
def test_distilled_vectors_take_the_zipf_weights_out(tiny_model, max_vocabulary):
    """Whether static.py folded its Zipf-rank weights in (whole vocabulary) or stored them beside a
    mapping (a subset), the vectors training starts from are the unweighted ones."""
    folder = static_tiny(tiny_model, max_vocabulary)
    tokenizer, vectors = distilled_vectors(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    served = tensors["embeddings"]
    if "mapping" in tensors:
        served = served[tensors["mapping"]] * tensors["weights"][:, None]
    zipf = sif_weights(tokenizer.get_vocab_size(), read_json(folder / "config.json")["sif_coefficient"])
    np.testing.assert_allclose(vectors * zipf[:, None], served, rtol=1e-5, atol=1e-7)


def test_needs_token_frequencies(trained, tmp_path):
    distilled, _, _ = trained
    with pytest.raises(ValueError, match="corpus and splits"):
        train_static(distilled, tmp_path / "missing.parquet", tmp_path / "out", SETTINGS)
