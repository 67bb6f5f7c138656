"""The workflow's configuration: schema validation, the model x method matrix and lookups.

The Snakefile validates against workflow/schemas/config.schema.yaml (which also fills defaults), then
calls `check` for the rules a JSON schema cannot express. Both fail before any job runs, naming the key.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
METHOD_TYPES = ("baseline", "full", "lora", "qlora", "tsdae", "distill")
VARIANTS = ("torch", "onnx-fp32", "onnx-int8")


class ConfigError(ValueError):
    """A configuration value that the workflow cannot run with; the message names the key."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str
    query_prefix: str = ""
    passage_prefix: str = ""
    pooling: str = "mean"
    max_seq_length: int = 256
    trust_remote_code: bool = False

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> ModelSpec:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in entry.items() if k in fields})

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def resolve_model_path(path: str) -> str:
    """Turn `package://pkg/sub` into the folder inside the installed package; other paths pass through."""
    if path.startswith("package://"):
        package, _, sub = path.removeprefix("package://").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ConfigError(f"model path {path!r}: Python package {package!r} is not installed")
        return str(Path(spec.origin).parent / sub)
    return path


def is_local_path(path: str) -> bool:
    """A path that names a local folder rather than a hub id (`org/name`)."""
    return path.startswith(("/", "./", "../", "~", "package://")) or os.path.exists(path)


def validate(config: dict[str, Any], schema: Path = SCHEMA) -> dict[str, Any]:
    """Schema validation with defaults filled in, then `check`.

    The defaults are filled as `snakemake.utils.validate(..., set_default=True)` does (jsonschema's
    documented extension), from the schema read once with the C YAML loader: Snakemake's reader costs
    0.15 s of CPU at every workflow start, and every cluster job parses the workflow twice.
    """
    import jsonschema

    with open(schema, encoding="utf-8") as fh:
        schema_doc = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema_doc).iter_errors(config))
    if error is not None:
        raise ConfigError(f"config key {_dotted(error.absolute_path)}: {error.message}")
    _with_defaults(jsonschema.Draft202012Validator)(schema_doc).validate(config)  # valid: fills defaults
    check(config)
    return config


def _with_defaults(validator_class):
    """A validator class that also sets each missing property that has a `default` in the schema."""
    import jsonschema

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _dotted(path) -> str:
    """['models', 0, 'path'] -> 'models[0].path' (the top level is '<root>')."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<root>"


def load(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return validate(yaml.safe_load(fh) or {})


def method_type(config: dict[str, Any], method: str) -> str:
    return config["methods"][method].get("type", method)


def check(config: dict[str, Any]) -> None:
    """Cross-key rules: unique names, known methods, existing local paths, a teacher for distill."""
    names = [m["name"] for m in config["models"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"models: duplicate model name(s) {duplicates}")
    teacher_names = [t["name"] for t in config.get("teachers", [])]
    clash = sorted(set(teacher_names) & set(names) | {n for n in teacher_names if teacher_names.count(n) > 1})
    if clash:
        raise ConfigError(f"teachers: name(s) {clash} used twice (teachers and models share one namespace)")

    for key, entries in (("models", config["models"]), ("teachers", config.get("teachers", []))):
        for i, entry in enumerate(entries):
            path = entry["path"]
            local = resolve_model_path(path)
            if is_local_path(path) and not Path(local).expanduser().is_dir():
                raise ConfigError(f"{key}[{i}].path: model folder {path!r} does not exist")

    for name, params in config["methods"].items():
        kind = params.get("type", name)
        if kind not in METHOD_TYPES:
            raise ConfigError(
                f"methods.{name}: unknown method {kind!r}; "
                f"set methods.{name}.type to one of {list(METHOD_TYPES)}"
            )
        if kind == "distill":
            teacher = params.get("teacher")
            if not teacher:
                raise ConfigError(
                    f"methods.{name}.teacher: distill needs a teacher (a name from teachers/models)"
                )
            if teacher not in teacher_names + names:
                raise ConfigError(f"methods.{name}.teacher: {teacher!r} is not in teachers or models")

    for i, pair in enumerate(config.get("exclude", [])):
        if pair["model"] not in names:
            raise ConfigError(f"exclude[{i}].model: {pair['model']!r} is not a configured model")
        if pair["method"] not in config["methods"]:
            raise ConfigError(f"exclude[{i}].method: {pair['method']!r} is not a configured method")

    archive = config["archive"]
    if archive.get("source", "remote") == "remote" and not archive.get("query"):
        raise ConfigError("archive.query: required when archive.source is remote")
    if archive.get("source") == "local" and not archive.get("local_dir"):
        raise ConfigError("archive.local_dir: required when archive.source is local")

    chunk = config.get("chunk", {})
    if chunk.get("overlap_tokens", 0) >= chunk.get("max_tokens", 256):
        raise ConfigError("chunk.overlap_tokens: must be smaller than chunk.max_tokens")
    split = config.get("datasets", {}).get("split", {})
    if split.get("val", 0.1) + split.get("test", 0.2) >= 1:
        raise ConfigError("datasets.split: val + test must leave documents for training")
    negatives = config.get("datasets", {}).get("hard_negatives", {})
    if negatives.get("range_max", 50) - negatives.get("range_min", 2) < negatives.get("num_negatives", 1):
        raise ConfigError(
            "datasets.hard_negatives: range_max - range_min must leave room for num_negatives candidates"
        )


def matrix(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (model, method) pair to train, in config order, minus `exclude`."""
    excluded = {(e["model"], e["method"]) for e in config.get("exclude", [])}
    return [
        (m["name"], method)
        for m in config["models"]
        for method in config["methods"]
        if (m["name"], method) not in excluded
    ]


def model_spec(config: dict[str, Any], name: str) -> ModelSpec:
    """A candidate or teacher by name; an unknown name is taken as a path (for miner/tokenizer keys)."""
    for entry in [*config["models"], *config.get("teachers", [])]:
        if entry["name"] == name:
            return ModelSpec.from_config(entry)
    return ModelSpec(name=Path(name).name or name, path=name)


def reference_model(config: dict[str, Any], key: str | None) -> ModelSpec:
    """The model named by an optional key (chunk.tokenizer_model, datasets.miner_model); default the first."""
    return model_spec(config, key) if key else ModelSpec.from_config(config["models"][0])
