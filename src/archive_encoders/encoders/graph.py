"""What every exported-graph encoder shares (ONNX Runtime, OpenVINO): the folder's config, the tokenizer,
batching by length, prefixes. numpy + tokenizers only, so a runtime module adds just its own engine.

A folder holds `encoder_config.json` (pooling, prefixes, max_seq_length, files, inputs), `tokenizer.json`
(written without padding) and the graph files; pooling and L2 normalisation run inside the graph.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

CONFIG_FILE = "encoder_config.json"


def read_encoder_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not an exported encoder folder (no {CONFIG_FILE})")
    return json.loads(path.read_text(encoding="utf-8"))


def load_tokenizer(folder: str | os.PathLike, max_seq_length: int) -> Tokenizer:
    """tokenizer.json with no padding (each batch pads to its own longest text) and truncation at the
    model's max length (a fixed padding length in a shipped tokenizer.json once made every 9-token query
    cost 128)."""
    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(int(max_seq_length))
    return tokenizer


class GraphEncoder:
    """Tokenise, batch by length, run the graph (`_run`, per runtime), return L2-normalised float32 rows.

    `pad_multiple` > 1 rounds each batch's length up to a multiple (padding is masked, so the embedding
    does not change): engines that specialise kernels per input shape (OpenVINO) then meet a few shapes
    instead of one per length.
    """

    pad_multiple = 1

    def __init__(self, folder: str | os.PathLike, file_key: str) -> None:
        self.folder = Path(folder)
        self.config = read_encoder_config(self.folder)
        files = self.config.get("files", {})
        if file_key not in files:
            raise ValueError(
                f"{self.folder}: variant {file_key!r} not exported; expected one of {sorted(files)}"
            )
        self.variant = file_key
        self.model_path = self.folder / files[file_key]
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: variant {file_key!r} was not exported")
        self.query_prefix: str = self.config.get("query_prefix", "")
        self.passage_prefix: str = self.config.get("passage_prefix", "")
        self.max_seq_length: int = int(self.config["max_seq_length"])
        self.dimension: int = int(self.config["dimension"])
        self.pad_id = int(self.config.get("pad_token_id", 0))
        self.tokenizer = load_tokenizer(self.folder, self.max_seq_length)

    # --- public API ---

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of search queries (the model's query prefix, e.g. e5's "query: ", is added)."""
        return self.encode(texts, batch_size=batch_size, prefix=self.query_prefix)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of passages/documents (the model's passage prefix is added)."""
        return self.encode(texts, batch_size=batch_size, prefix=self.passage_prefix)

    def encode(self, texts: Sequence[str] | str, batch_size: int = 32, prefix: str = "") -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), dimension), in input order.

        Texts are tokenised once, sorted by length and batched, so each batch pads only to its own
        longest text; a single text runs unpadded (or padded to `pad_multiple`).
        """
        if isinstance(texts, str):
            texts = [texts]
        if prefix:
            texts = [prefix + t for t in texts]
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if n == 1:
            return self._embed_batch([self.tokenizer.encode(texts[0]).ids])
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(n), key=lambda i: len(ids[i]))
        out = np.empty((n, self.dimension), dtype=np.float32)
        for start in range(0, n, batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._embed_batch([ids[i] for i in chunk])
        return out

    def token_ids(self, text: str) -> list[int]:
        """The ids the model sees for `text` (special tokens included)."""
        return self.tokenizer.encode(text).ids

    # --- internals ---

    def _embed_batch(self, batch: list[list[int]]) -> np.ndarray:
        longest = max(len(x) for x in batch)
        width = -(-longest // self.pad_multiple) * self.pad_multiple
        if len(batch) == 1 and width == longest:
            input_ids = np.array(batch, dtype=np.int64)
            return self._run(input_ids, np.ones_like(input_ids))
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, x in enumerate(batch):
            input_ids[row, : len(x)] = x
            attention_mask[row, : len(x)] = 1
        return self._run(input_ids, attention_mask)

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError
