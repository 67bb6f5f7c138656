"""The fidelity gate: an export's embeddings against the reference's on a seeded sample."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archive_encoders.config import ModelSpec
from archive_encoders.encoders.onnx import OnnxEncoder
from archive_encoders.sampling import query_like
from archive_encoders.system import size_mb
from archive_encoders.vectors import cosines, spearman, unit

FP32_MIN_COSINE = 0.9999  # an FP32 graph that misses this is a broken export, not a precision trade-off

log = logging.getLogger(__name__)


class FidelityError(RuntimeError):
    """An exported variant does not reproduce the PyTorch model closely enough."""


def fidelity_report(
    model,
    spec: ModelSpec,
    folder: Path,
    files: Mapping[str, str],
    texts: Sequence[str],
    settings,
    threads=None,
) -> dict:
    """Every variant against the SentenceTransformer on the same texts (passages and query-like heads)."""
    passages = [spec.passage_prefix + t for t in texts]
    queries = [spec.query_prefix + query_like(t) for t in texts]
    reference = np.concatenate([_torch_embed(model, passages), _torch_embed(model, queries)])
    report: dict[str, Any] = {
        "threshold": float(settings["min_mean_cosine"]),
        "fp32_min_cosine": FP32_MIN_COSINE,
        "samples": len(texts),
        "texts": len(reference),
        "variants": {},
    }
    for key in files:
        variant = f"onnx-{key}"
        size = round(size_mb(folder / files[key]), 2)
        try:
            encoder = OnnxEncoder(folder, variant=key, threads=threads)
            got = np.concatenate([encoder.encode(passages), encoder.encode(queries)])
        except Exception as err:  # FP16 contrib kernels exist for CUDA only
            if key != "fp16":
                raise
            report["variants"][variant] = {
                "size_mb": size,
                "passed": None,
                "checked": False,
                "reason": str(err)[:200],
            }
            continue
        metrics = compare(reference, got)
        limit = FP32_MIN_COSINE if key == "fp32" else report["threshold"]
        value = metrics["min_cosine"] if key == "fp32" else metrics["mean_cosine"]
        report["variants"][variant] = {
            **metrics,
            "size_mb": size,
            "file": files[key],
            "passed": bool(value >= limit),
        }
    return report


def _torch_embed(model, texts: Sequence[str]) -> np.ndarray:
    emb = model.encode(
        list(texts),
        batch_size=32,
        prompt="",
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(emb, dtype=np.float32)


def compare(reference: np.ndarray, got: np.ndarray) -> dict[str, float | None]:
    """Mean/min cosine per text, and Spearman between the two pairwise-similarity matrices."""
    ref, out = unit(reference), unit(got)
    cosine = cosines(ref, out)
    upper = np.triu_indices(len(ref), k=1)
    return {
        "mean_cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
        "spearman": spearman((ref @ ref.T)[upper], (out @ out.T)[upper]),
    }


def check_fidelity(report: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """FP32 must match torch; a low INT8 is logged and fails only if the config says so."""
    variants = report["variants"]
    fp32 = variants["onnx-fp32"]
    if not fp32["passed"]:
        raise FidelityError(
            f"onnx-fp32 differs from torch: min cosine {fp32['min_cosine']:.6f} < {FP32_MIN_COSINE}"
            " (a broken export, not a precision trade-off)"
        )
    for name, entry in variants.items():
        if name == "onnx-fp32" or entry.get("passed") is not False:
            continue
        message = f"{name}: mean cosine {entry['mean_cosine']:.5f} < min_mean_cosine {report['threshold']}"
        if settings.get("fail_on_low_fidelity"):
            raise FidelityError(message + " (export.fail_on_low_fidelity is set)")
        log.warning("%s: flagged in the report", message)
