"""One interface over every variant: L2-normalised embeddings, the model's prefixes applied inside.

`load_encoder(variant, folder, model_spec)` opens a variant from the artefact folder that holds it
(variants.Variant.artefact), with the runtime the registry names. Evaluation and latency both load
through here, so they measure exactly the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from archive_encoders.variants import variant as variant_entry


class Encoder(Protocol):
    """What evaluation, latency and search need from a model."""

    query_prefix: str
    passage_prefix: str

    def encode(self, texts: Sequence[str], batch_size: int = 32, prefix: str = "") -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...


class PrefixedEncoder:
    """encode_queries/encode_passages on top of `encode`, with the prefixes of the model's spec."""

    query_prefix = ""
    passage_prefix = ""

    def encode(self, texts: Sequence[str], batch_size: int = 32, prefix: str = "") -> np.ndarray:
        raise NotImplementedError

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.encode(texts, batch_size=batch_size, prefix=self.query_prefix)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.encode(texts, batch_size=batch_size, prefix=self.passage_prefix)


class TorchEncoder(PrefixedEncoder):
    """A SentenceTransformer behind the Encoder interface."""

    def __init__(self, model, query_prefix: str = "", passage_prefix: str = "") -> None:
        self.model = model
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix

    def encode(self, texts: Sequence[str], batch_size: int = 32, prefix: str = "") -> np.ndarray:
        # prompt="" (not None) when there is no prefix, so a default prompt saved in the folder is not
        # added on top: the spec is the one source of prefixes, as it is for the ONNX export.
        return self.model.encode(
            list(texts),
            prompt=prefix,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)


def load_encoder(
    variant: str,
    folder: str | os.PathLike,
    model_spec: Mapping[str, Any],
    threads: int | None = None,
    device: str = "cpu",
) -> Encoder:
    """The encoder of `variant`, read from `folder` (the trained model or the export that holds it)."""
    entry = variant_entry(variant)
    if entry.runtime == "torch":
        import torch

        from archive_encoders.config import ModelSpec
        from archive_encoders.models import load_sentence_transformer

        if threads:
            torch.set_num_threads(int(threads))
        spec = replace(ModelSpec.from_config(dict(model_spec)), path=str(folder))
        model = load_sentence_transformer(spec, device=device)
        return TorchEncoder(model, spec.query_prefix, spec.passage_prefix)
    if entry.runtime == "onnxruntime":
        from archive_encoders.encoders.onnx import OnnxEncoder

        return OnnxEncoder(folder, variant=entry.file_key, threads=threads, device=device)
    if entry.runtime == "openvino":
        from archive_encoders.encoders.openvino import OpenVinoEncoder

        return OpenVinoEncoder(folder, variant=entry.file_key, threads=threads, device=device)
    if entry.runtime == "model2vec":
        from archive_encoders.encoders.static import StaticEncoder

        return StaticEncoder(folder, threads=threads, device=device)
    raise ValueError(f"variant {variant!r}: no loader for runtime {entry.runtime!r}")
