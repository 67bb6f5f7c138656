"""The deployable encoder: an exported ONNX folder run with tokenizers + onnxruntime + numpy, no torch.

    from archive_encoders.onnx_encoder import OnnxEncoder

    enc = OnnxEncoder("results/onnx/minilm/lora", variant="int8", threads=2)
    q = enc.encode_queries(["who wrote the letter?"])          # (1, dim) float32, L2-normalised
    p = enc.encode_passages(chunks, batch_size=32)             # (len(chunks), dim)
    scores = q @ p.T                                           # cosine similarity

The folder is what `archive_encoders.export.export` writes: `model.onnx` (FP32), `model_int8.onnx`,
optionally `model_fp16.onnx`, `tokenizer.json` and `encoder_config.json` (pooling, prefixes,
max_seq_length, files, inputs). Pooling and L2 normalisation run inside the graph, so the output is the
sentence embedding. This module must stay importable without torch: a search engine deploys it alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

CONFIG_FILE = "encoder_config.json"
DEFAULT_FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx", "fp16": "model_fp16.onnx"}


def read_encoder_config(folder: str | os.PathLike) -> dict:
    return json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))


def session_options(threads: int | None = None, allow_spinning: bool = False) -> ort.SessionOptions:
    """Options for a latency-sensitive CPU session.

    Spinning is off by default: spinning intra-op threads keep burning the cores after each run, which
    starves anything else in the process (torch, the tokenizer) and every neighbour on a shared machine.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class OnnxEncoder:
    """Sentence embeddings from an exported folder.

    variant: "int8" (default; the CPU deployment), "fp32", or "fp16" (GPU, when exported).
    threads: intra-op threads (None: onnxruntime's default, one per physical core).
    providers: onnxruntime execution providers; default CPU, or CUDA first when `device="cuda"`.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        variant: str = "int8",
        threads: int | None = None,
        device: str = "cpu",
        providers: Sequence[str] | None = None,
        allow_spinning: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.config = read_encoder_config(self.folder)
        files = {**DEFAULT_FILES, **self.config.get("files", {})}
        if variant not in files:
            raise ValueError(f"variant {variant!r}: expected one of {sorted(files)}")
        self.variant = variant
        self.model_path = self.folder / files[variant]
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: variant {variant!r} was not exported")
        self.query_prefix: str = self.config.get("query_prefix", "")
        self.passage_prefix: str = self.config.get("passage_prefix", "")
        self.max_seq_length: int = int(self.config["max_seq_length"])

        # tokenizer.json is written without padding; pad per batch to the longest input ourselves
        # (a fixed padding length in a shipped tokenizer.json once made every 9-token query cost 128).
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.pad_id = int(self.config.get("pad_token_id", 0))

        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device == "cuda":
                providers = ["CUDAExecutionProvider", *providers]
        self.session = ort.InferenceSession(
            str(self.model_path),
            sess_options=session_options(threads, allow_spinning),
            providers=list(providers),
        )
        self.providers = self.session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            raise RuntimeError("device cuda: onnxruntime has no CUDAExecutionProvider here")
        # Names resolved once: per-call work is only tokenise, copy ids into an int64 array, run.
        input_names = [i.name for i in self.session.get_inputs()]
        self._with_type_ids = "token_type_ids" in input_names
        self._output_names = [self.session.get_outputs()[0].name]
        self._run = self.session.run
        self.dimension = int(self.config.get("dimension") or self.session.get_outputs()[0].shape[-1])

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
        longest text; a single text runs unpadded.
        """
        if isinstance(texts, str):
            texts = [texts]
        if prefix:
            texts = [prefix + t for t in texts]
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if n == 1:
            return self._embed_one(self.tokenizer.encode(texts[0]).ids)
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        order = sorted(range(n), key=lambda i: len(ids[i]))
        out = np.empty((n, self.dimension), dtype=np.float32)
        for start in range(0, n, batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._embed_batch([ids[i] for i in chunk])
        return out

    # --- internals ---

    def _feed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._with_type_ids:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return feed

    def _embed_one(self, ids: list[int]) -> np.ndarray:
        input_ids = np.array([ids], dtype=np.int64)
        return self._run(self._output_names, self._feed(input_ids, np.ones_like(input_ids)))[0]

    def _embed_batch(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in batch)
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, x in enumerate(batch):
            input_ids[row, : len(x)] = x
            attention_mask[row, : len(x)] = 1
        return self._run(self._output_names, self._feed(input_ids, attention_mask))[0]
