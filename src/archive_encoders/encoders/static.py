"""The static encoder: a model2vec folder (one vector per token) read with numpy + tokenizers + safetensors.

An embedding is the L2-normalised mean of the vectors of the text's tokens, exactly what
`model2vec.StaticModel.encode` computes (same tokenizer call, unknown tokens dropped, same truncation),
without its per-call dispatch: one gather and one sum per batch. No torch, no transformers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from archive_encoders.encoders.graph import CONFIG_FILE, read_encoder_config

WEIGHTS_FILE = "model.safetensors"
DEFAULT_MAX_LENGTH = 512  # model2vec's StaticModel default when its config names none


class StaticEncoder:
    """Sentence embeddings from a static (model2vec) export; threads/device are accepted for the common
    loader's sake: a gather and a sum need neither."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None, device: str = "cpu") -> None:
        from safetensors.numpy import load_file

        if device != "cpu":
            raise ValueError(f"device {device!r}: the static variant runs on the CPU")
        self.folder = Path(folder)
        self.config = read_encoder_config(self.folder)
        self.model_path = self.folder / WEIGHTS_FILE
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: not a static (model2vec) export")
        tensors = load_file(str(self.model_path))
        self.embedding = np.ascontiguousarray(tensors["embeddings"], dtype=np.float32)
        self.weights = tensors.get("weights")
        self.mapping = tensors.get("mapping")
        m2v_config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        max_length = m2v_config.get("max_length", DEFAULT_MAX_LENGTH)
        self.max_chars: int | None = None
        if max_length is None:
            self.tokenizer.no_truncation()
        else:
            self.tokenizer.enable_truncation(int(max_length))
            # model2vec first cuts each text at max_length x the median token length, in characters
            vocab = self.tokenizer.get_vocab()
            self.max_chars = int(max_length) * int(np.median([len(t) for t in vocab]))
        self.unk_id = unknown_token_id(self.tokenizer)
        self.query_prefix: str = self.config.get("query_prefix", "")
        self.passage_prefix: str = self.config.get("passage_prefix", "")
        self.dimension = int(self.embedding.shape[1])
        self.providers = ["numpy"]
        self.variant = "static"

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.encode(texts, batch_size=batch_size, prefix=self.query_prefix)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.encode(texts, batch_size=batch_size, prefix=self.passage_prefix)

    def token_ids(self, text: str) -> list[int]:
        """The token ids that carry a vector (unknown tokens dropped, as model2vec does)."""
        if self.max_chars is not None:
            text = text[: self.max_chars]
        return [i for i in self.tokenizer.encode(text, add_special_tokens=False).ids if i != self.unk_id]

    def encode(self, texts: Sequence[str] | str, batch_size: int = 32, prefix: str = "") -> np.ndarray:
        """L2-normalised float32 embeddings, (len(texts), dimension); a text with no known token is a zero
        row (as in model2vec)."""
        if isinstance(texts, str):
            texts = [texts]
        if prefix:
            texts = [prefix + t for t in texts]
        if self.max_chars is not None:
            texts = [t[: self.max_chars] for t in texts]
        if len(texts) == 1:
            ids = [self.token_ids(texts[0])]
        else:
            encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
            ids = [[i for i in e.ids if i != self.unk_id] for e in encodings]
        return self._pool(ids)

    def _pool(self, ids: list[list[int]]) -> np.ndarray:
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        rows = np.flatnonzero(lengths)
        if rows.size == 0:
            return out
        flat = np.fromiter((i for x in ids for i in x), dtype=np.int64, count=int(lengths.sum()))
        vectors = self.embedding[flat if self.mapping is None else self.mapping[flat]]
        if self.weights is not None:
            vectors = vectors * self.weights[flat][:, None]
        starts = np.concatenate([[0], np.cumsum(lengths[rows])[:-1]])
        sums = np.add.reduceat(vectors, starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        out[rows] = sums / np.maximum(norms, 1e-32)
        return out


def unknown_token_id(tokenizer: Tokenizer) -> int | None:
    """The id of the tokenizer model's unknown token, found as model2vec finds it (None if it has none)."""
    model = tokenizer.model
    if hasattr(model, "unk_token"):  # WordPiece, BPE, WordLevel
        return None if model.unk_token is None else tokenizer.token_to_id(model.unk_token)
    return json.loads(tokenizer.to_str())["model"].get("unk_id")  # Unigram


__all__ = ["CONFIG_FILE", "StaticEncoder", "unknown_token_id"]
