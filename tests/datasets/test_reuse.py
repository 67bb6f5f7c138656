"""Embeddings reused across jobs (datasets/reuse.py): a file answers only its own encoder, and a text it
holds comes back as written while the rest are encoded in one call."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive_encoders.config import ModelSpec
from archive_encoders.datasets.reuse import EncodedTexts, encode_reusing, write_encoded

SPEC = ModelSpec(
    name="m", path="/models/m", query_prefix="query: ", passage_prefix="passage: ", max_seq_length=64
)


def embed(role: str, text: str) -> np.ndarray:
    """A deterministic 4-d embedding of (role, text), standing for an encoder."""
    digest = hashlib.sha256(f"{role}\0{text}".encode()).digest()
    return np.frombuffer(digest[:16], dtype=np.uint32).astype(np.float32) / 2**32


class CountingEncoder:
    """encode(role, texts) -> embed() of each, recording what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, role: str, texts: list[str]) -> np.ndarray:
        self.calls.append((role, list(texts)))
        return np.stack([embed(role, t) for t in texts]) if texts else np.zeros((0, 4), np.float32)


def write(path, spec=SPEC, queries=("q1", "q2"), passages=("p1", "p2", "p3")):
    texts = {"query": list(queries), "passage": list(passages)}
    matrices = {role: np.stack([embed(role, t) for t in items]) for role, items in texts.items()}
    write_encoded(path, spec, texts, matrices)


def test_the_file_answers_what_it_holds_and_one_call_encodes_the_rest(tmp_path):
    write(tmp_path / "e.parquet")
    reused = EncodedTexts.read(tmp_path / "e.parquet", SPEC)
    encoder = CountingEncoder()
    got = encode_reusing(encoder, "passage", ["p2", "new", "p1", "new", "other"], reused)
    assert encoder.calls == [("passage", ["new", "other"])]  # distinct, in order, one call
    np.testing.assert_array_equal(
        got, np.stack([embed("passage", t) for t in ["p2", "new", "p1", "new", "other"]])
    )
    assert reused.reused == 2
    # a query text is not a passage text: the role is part of the key
    encode_reusing(encoder, "query", ["p1", "q2"], reused)
    assert encoder.calls[-1] == ("query", ["p1"])
    encoder.calls.clear()
    assert encode_reusing(encoder, "query", ["q1", "q2"], reused).shape == (2, 4)
    assert encoder.calls == []  # all held: the encoder is never called


@pytest.mark.parametrize(
    "other",
    [
        ModelSpec(**{**SPEC.as_dict(), "query_prefix": ""}),
        ModelSpec(**{**SPEC.as_dict(), "max_seq_length": 128}),
        ModelSpec(**{**SPEC.as_dict(), "path": "/models/other"}),
    ],
)
def test_another_encoder_s_file_is_never_read(tmp_path, other):
    write(tmp_path / "e.parquet")
    assert EncodedTexts.read(tmp_path / "e.parquet", other) is None
    # the config's name for the same encoder does not matter
    assert EncodedTexts.read(tmp_path / "e.parquet", ModelSpec(**{**SPEC.as_dict(), "name": "x"})) is not None


def test_no_file_means_everything_is_encoded(tmp_path):
    assert EncodedTexts.read(tmp_path / "absent.parquet", SPEC) is None
    assert EncodedTexts.read(None, SPEC) is None
    encoder = CountingEncoder()
    encode_reusing(encoder, "query", ["a", "b"], None)
    assert encoder.calls == [("query", ["a", "b"])]


def test_a_malformed_write_is_refused(tmp_path):
    with pytest.raises(ValueError, match="2 query texts"):
        write_encoded(tmp_path / "e.parquet", SPEC, {"query": ["a", "b"]}, {"query": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="roles"):
        write_encoded(tmp_path / "e.parquet", SPEC, {"title": ["a"]}, {"title": np.zeros((1, 4))})
    assert not (tmp_path / "e.parquet").exists()


texts = st.lists(st.text(min_size=0, max_size=6), max_size=12)


@settings(max_examples=60, deadline=None)
@given(held=texts, asked=texts, role=st.sampled_from(["query", "passage"]))
def test_reusing_equals_encoding_everything(tmp_path_factory, held, asked, role):
    """Whatever the file holds, the rows are those the encoder gives, in the order asked."""
    path = tmp_path_factory.mktemp("reuse") / "e.parquet"
    distinct = list(dict.fromkeys(held))
    matrix = np.stack([embed(role, t) for t in distinct]) if distinct else np.zeros((0, 4))
    write_encoded(path, SPEC, {role: distinct}, {role: matrix})
    reused = EncodedTexts.read(path, SPEC)
    got = encode_reusing(CountingEncoder(), role, asked, reused)
    assert got.shape == (len(asked), 4) and got.dtype == np.float32
    for row, text in zip(got, asked, strict=True):
        np.testing.assert_array_equal(row, embed(role, text))
    assert reused.reused == sum(t in set(distinct) for t in asked)
