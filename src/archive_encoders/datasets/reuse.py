"""Embeddings one job encoded, read by a later job that asks the same encoder for the same texts.

The miner (datasets/triplets.py) encodes every pseudo-query and its candidate pool with the miner model.
The teachers (train/teachers.py) then encode much of it again: the distillation teacher the train chunks
and the queries, a bi-encoder GPL teacher the queries, positives and negatives of the triplets. Where a
teacher is the miner's encoder (same weights, sequence length and prefixes: the demo's teacher, and any
config that distils or GPL-trains from its miner model), the miner's file (paths.MINER_EMBEDDINGS)
answers it and only the texts the file lacks are encoded; the model is not even loaded when it has all.

The file: one row per (role, text), the embedding as the model returned it (not normalised: a
distillation target keeps its norm), and the encoder's identity in the Parquet metadata, so a file of
another encoder is never read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from archive_encoders.config import ModelSpec
from archive_encoders.io import write_parquet

log = logging.getLogger(__name__)

ROLES = ("query", "passage")
IDENTITY_KEY = "archive_encoders.encoder"


def write_encoded(
    path: str | os.PathLike,
    spec: ModelSpec,
    texts: Mapping[str, Sequence[str]],
    embeddings: Mapping[str, np.ndarray],
) -> None:
    """Write {role: texts} with {role: embeddings, one row per text} and the encoder's identity."""
    if set(texts) - set(ROLES) or set(texts) != set(embeddings):
        raise ValueError(f"write_encoded: roles {sorted(texts)} / {sorted(embeddings)}; roles are {ROLES}")
    matrices = {role: np.asarray(embeddings[role], dtype=np.float32) for role in texts}
    for role, matrix in matrices.items():
        if matrix.ndim != 2 or len(matrix) != len(texts[role]):
            raise ValueError(f"write_encoded: {len(texts[role])} {role} texts but embeddings {matrix.shape}")
    frame = pl.DataFrame(
        {
            "role": [role for role in texts for _ in texts[role]],
            "text": [t for role in texts for t in texts[role]],
            "embedding": np.concatenate(list(matrices.values())),
        },
        schema_overrides={"role": pl.String, "text": pl.String},
    )
    write_parquet(frame, path, metadata={IDENTITY_KEY: json.dumps(spec.encoding(), sort_keys=True)})


class EncodedTexts:
    """A reuse file's rows by (role, text), read through encode_reusing, which counts what it answered."""

    def __init__(self, keys: Sequence[tuple[str, str]], embeddings: np.ndarray) -> None:
        self.row = {key: i for i, key in enumerate(keys)}
        self.embeddings = embeddings
        self.reused = 0  # texts answered from the file

    @classmethod
    def read(cls, path: str | os.PathLike | None, spec: ModelSpec) -> EncodedTexts | None:
        """The file's rows when it was written by `spec`'s encoder; None (logged) when there is no file or
        it is another encoder's."""
        if not path or not Path(path).exists():
            return None
        written_by = pl.read_parquet_metadata(path).get(IDENTITY_KEY)
        wanted = json.dumps(spec.encoding(), sort_keys=True)
        if written_by != wanted:
            log.info(
                "%s was encoded by another encoder (%s): %s encodes everything itself",
                path,
                written_by,
                spec.name,
            )
            return None
        frame = pl.read_parquet(path)
        embeddings = frame["embedding"].to_numpy().astype(np.float32, copy=False)
        return cls(list(zip(frame["role"], frame["text"], strict=True)), embeddings)


def encode_reusing(
    encode: Callable[[str, list[str]], np.ndarray],
    role: str,
    texts: Sequence[str],
    reused: EncodedTexts | None,
) -> np.ndarray:
    """float32 embeddings of `texts` (one row each, in order): from `reused` where it holds the (role, text),
    the rest by one `encode(role, distinct missing texts)` call, none when the file holds them all."""
    texts = list(texts)
    if reused is None:
        return np.asarray(encode(role, texts), dtype=np.float32)
    found = [reused.row.get((role, t)) for t in texts]
    missing = list(dict.fromkeys(t for t, i in zip(texts, found, strict=True) if i is None))
    fresh = np.asarray(encode(role, missing), dtype=np.float32) if missing else None
    position = {t: i for i, t in enumerate(missing)}
    reused.reused += len(texts) - found.count(None)
    if not texts:
        return np.zeros((0, reused.embeddings.shape[1]), dtype=np.float32)
    return np.stack(
        [
            reused.embeddings[i] if i is not None else fresh[position[t]]
            for t, i in zip(texts, found, strict=True)
        ]
    )


class LazyModel:
    """A sentence-transformers encoder loaded on its first non-empty call: encode(role, texts) with the
    role's prefix, as the model returns them (not normalised)."""

    def __init__(self, spec: ModelSpec, device: str, batch_size: int) -> None:
        self.spec, self.device, self.batch_size = spec, device, batch_size
        self._model = None
        self.encoded = 0  # texts this process encoded
        self.encode_s = 0.0  # seconds in the model's encode (its loading excluded)

    @property
    def model(self):
        if self._model is None:
            from archive_encoders.models import load_sentence_transformer

            self._model = load_sentence_transformer(self.spec, device=self.device)
        return self._model

    def __call__(self, role: str, texts: Sequence[str]) -> np.ndarray:
        prefix = self.spec.query_prefix if role == "query" else self.spec.passage_prefix
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        started = time.perf_counter()
        rows = model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
        self.encoded += len(texts)
        self.encode_s += time.perf_counter() - started
        return rows

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())
