"""The deployable encoder: an exported ONNX folder run with tokenizers + onnxruntime + numpy, no torch.

    from archive_encoders.encoders.onnx import OnnxEncoder

    enc = OnnxEncoder("results/onnx/minilm/lora", variant="int8", threads=2)
    q = enc.encode_queries(["who wrote the letter?"])          # (1, dim) float32, L2-normalised
    p = enc.encode_passages(chunks, batch_size=32)             # (len(chunks), dim)
    scores = q @ p.T                                           # cosine similarity

The folder is what `archive_encoders.export.onnx.export` writes: `model.onnx` (FP32), `model_int8.onnx`,
optionally `model_fp16.onnx`, `tokenizer.json` and `encoder_config.json` (pooling, prefixes,
max_seq_length, files, inputs). Pooling and L2 normalisation run inside the graph, so the output is the
sentence embedding. This module must stay importable without torch: a search engine deploys it alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from archive_encoders.encoders.graph import CONFIG_FILE, GraphEncoder, read_encoder_config

__all__ = ["CONFIG_FILE", "DEFAULT_FILES", "OnnxEncoder", "read_encoder_config", "session_options"]

DEFAULT_FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx", "fp16": "model_fp16.onnx"}


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


class OnnxEncoder(GraphEncoder):
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
        super().__init__(folder, variant)
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
        # Resolved once: per call there is only tokenise, copy ids into an int64 array, run.
        input_names = [i.name for i in self.session.get_inputs()]
        self._with_type_ids = "token_type_ids" in input_names
        self._output_names = [self.session.get_outputs()[0].name]
        self._session_run = self.session.run

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._with_type_ids:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return self._session_run(self._output_names, feed)[0]
