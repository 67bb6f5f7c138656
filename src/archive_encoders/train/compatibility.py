"""Which model x method pairs can run, read from the models' config files (no weights): checked where
the config is loaded (rules/common.smk) and again by the training job once a hub model is downloaded."""

from __future__ import annotations

import importlib.resources
import importlib.util
from typing import Any

from archive_encoders.config import (
    ConfigError,
    ModelSpec,
    base_method,
    matrix,
    model_spec,
    resolve_model_path,
)
from archive_encoders.methods import METHOD_TYPES


def check_pairs(config: dict[str, Any]) -> None:
    """Each model x method of the matrix can run: the packages it needs, a decoder for TSDAE, a teacher
    no narrower than the student and not the student itself, layers to drop. Read from the models'
    config files only (no weights; a hub model not on this machine yet is checked by its training job)."""
    from archive_encoders.models import model_info

    for model, method in dict.fromkeys((m, base_method(config, r)) for m, r in matrix(config)):
        params = config["methods"][method]
        mt = METHOD_TYPES[params.get("type") or method]
        exclude = f"or add {{model: {model}, method: {method}}} to exclude"
        for package in mt.requires:
            if importlib.util.find_spec(package) is None:
                raise ConfigError(
                    f"methods.{method}: {mt.name} needs the Python package {package!r}, which is not "
                    f"installed here (model {model}); install it {exclude}"
                )
        spec = model_spec(config, model)
        info = model_info(spec.path)
        problem = pair_problem(spec, info, mt, params, config)
        if problem:
            raise ConfigError(f"methods.{method}: {problem} ({exclude})")


def pair_problem(
    spec: ModelSpec, info, mt, params: dict[str, Any], config: dict[str, Any] | None
) -> str | None:
    """Why this model cannot be trained with this method (None when it can, or when it cannot be told):
    shared by the config check and the training job, which checks again once the model is downloaded."""
    from archive_encoders.models import causal_lm_types, model_info

    if "tsdae" in mt.phases_for(params) and info and info.model_type not in causal_lm_types():
        return (
            f"TSDAE needs a decoder of {spec.name}'s architecture ({info.model_type!r}) and transformers "
            "has no causal-LM class for it"
        )
    if not mt.teacher or not (config or params.get("teacher_model")):
        return None
    teacher = (
        model_spec(config, params["teacher"]) if config else ModelSpec.from_config(params["teacher_model"])
    )
    layers = params.get("student_layers") if mt.name == "distill" else None
    same = resolve_model_path(teacher.path) == resolve_model_path(spec.path)
    if mt.name == "distill" and same and not layers:
        return (
            f"{spec.name} would be distilled into itself (teacher {teacher.name!r}): set student_layers "
            "for a smaller, faster student, or pick another teacher"
        )
    if info and layers and info.layers and layers >= info.layers:
        return f"student_layers {layers} must be below the {info.layers} layers of {spec.name}"
    teacher_info = model_info(teacher.path) if mt.teacher == "bi-encoder" else None
    widths = (teacher_info and teacher_info.embedding_dim, info and info.embedding_dim)
    if all(widths) and widths[0] < widths[1]:
        return (
            f"teacher {teacher.name!r} ({widths[0]}-d) is narrower than the student {spec.name} "
            f"({widths[1]}-d): PCA can only narrow the teacher's embeddings"
        )
    return None
