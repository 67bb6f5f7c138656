"""What each training phase reads: its dataset, where each example comes from (for MNRL's batches)
and the dataset's JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.config import ModelSpec
from archive_encoders.io import read_json
from archive_encoders.methods import METHOD_TYPES, PHASES
from archive_encoders.vectors import unit

log = logging.getLogger(__name__)


@dataclass
class PhaseData:
    """A phase's training set, where its examples come from (for MNRL's batches), its dataset JSON."""

    dataset: Any
    sources: list | None = None
    meta: dict[str, Any] | None = None
    kinds: list[str] | None = None  # the pseudo-query kind of each query it trains on


def _read(path, columns: list[str]) -> pl.DataFrame:
    return pl.read_parquet(path, columns=columns)


def triplet_dataset(path, spec: ModelSpec) -> PhaseData:
    """anchor/positive/negative with the model's query prefix on anchors and passage prefix on the rest."""
    from datasets import Dataset

    from archive_encoders.train.batching import Source

    frame = _read(path, ["anchor", "positive", "negative", "kind", "doc_id", "cluster_id", "chunk_index"])
    dataset = Dataset.from_dict(
        {
            "anchor": [spec.query_prefix + t for t in frame["anchor"]],
            "positive": [spec.passage_prefix + t for t in frame["positive"]],
            "negative": [spec.passage_prefix + t for t in frame["negative"]],
        }
    )
    sources = [Source(*row) for row in frame.select("cluster_id", "doc_id", "chunk_index").rows()]
    return PhaseData(dataset, sources, kinds=frame["kind"].to_list())


def tsdae_dataset(path, spec: ModelSpec) -> PhaseData:
    """(noisy passage, original text): the encoder sees a prefixed passage, the decoder rebuilds the text."""
    from datasets import Dataset

    frame = _read(path, ["noisy", "text"])
    return PhaseData(
        Dataset.from_dict({"noisy": [spec.passage_prefix + t for t in frame["noisy"]], "text": frame["text"]})
    )


def margin_dataset(path, spec: ModelSpec) -> PhaseData:
    """GPL: (query, positive, negative) with the student's prefixes; label = the teacher's margin
    score(query, positive) - score(query, negative) (MarginMSELoss's target)."""
    from datasets import Dataset

    frame = _read(path, ["anchor", "positive", "negative", "kind", "margin"])
    return PhaseData(
        Dataset.from_dict(
            {
                "anchor": [spec.query_prefix + t for t in frame["anchor"]],
                "positive": [spec.passage_prefix + t for t in frame["positive"]],
                "negative": [spec.passage_prefix + t for t in frame["negative"]],
                "label": frame["margin"].cast(pl.Float32).to_list(),
            }
        ),
        kinds=frame["kind"].to_list(),
    )


def project_teacher(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Teacher embeddings onto their top `dim` principal directions (sentence-transformers' distillation
    example: PCA fitted on teacher embeddings, applied as a bias-free linear map)."""
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if vt.shape[0] < dim:
        raise ValueError(f"distill: {len(embeddings)} teacher embeddings are too few for a {dim}-d PCA")
    return embeddings @ vt[:dim].T


def _normalizes(model) -> bool:
    return type(model[len(model) - 1]).__name__ == "Normalize"


def distill_dataset(path, spec: ModelSpec, model) -> PhaseData:
    """(text, teacher embedding) for passages and pseudo-queries: each text gets the STUDENT's prefix of
    its role (the teacher embedded it with its own), the targets projected to the student's width."""
    from datasets import Dataset

    frame = _read(path, ["text", "role", "kind", "embedding"])
    labels = np.asarray(frame["embedding"].to_list(), dtype=np.float32)
    student_dim = model.get_embedding_dimension()
    if labels.shape[1] < student_dim:
        raise ValueError(
            f"distill: the student ({student_dim}-d) is wider than the teacher ({labels.shape[1]}-d); "
            "PCA can only narrow the teacher's embeddings"
        )
    if labels.shape[1] > student_dim:
        labels = project_teacher(labels, student_dim)
        if _normalizes(model):  # a unit-length student cannot match non-unit targets
            labels = unit(labels)
        log.info("teacher embeddings projected by PCA to %d dims", student_dim)
    prefix = {"query": spec.query_prefix, "passage": spec.passage_prefix}
    return PhaseData(
        Dataset.from_dict(
            {
                "text": [prefix[role] + t for role, t in frame.select("role", "text").rows()],
                "label": labels.astype(np.float32).tolist(),
            }
        ),
        kinds=frame["kind"].drop_nulls().to_list(),
    )


def _phase_data(phase: str, path: str, spec: ModelSpec, model) -> PhaseData:
    if phase == "mnrl":
        return triplet_dataset(path, spec)
    if phase == "tsdae":
        return tsdae_dataset(path, spec)
    if phase == "margin_mse":
        return margin_dataset(path, spec)
    if phase == "distill":
        return distill_dataset(path, spec, model)
    raise ValueError(f"unknown training phase {phase!r}")


def load_data(
    kind: str, params: dict[str, Any], inputs: dict[str, Any], spec: ModelSpec, model
) -> dict[str, PhaseData]:
    """Training phases in order (methods.METHOD_TYPES), name -> data, from the `inputs` paths (a dataset
    `<name>` with its metadata JSON as `<name>_meta` when given)."""
    data = {}
    for phase in METHOD_TYPES[kind].phases_for(params):
        name = PHASES[phase]
        if not inputs.get(name):
            raise ValueError(f"method type {kind!r} needs the {name!r} input")
        data[phase] = _phase_data(phase, str(inputs[name]), spec, model)
        if inputs.get(f"{name}_meta"):
            data[phase].meta = read_json(inputs[f"{name}_meta"])
    return data
