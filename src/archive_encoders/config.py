"""The workflow's configuration: schema validation, defaults, the model x method matrix and lookups.

The JSON schema (`schema/config.schema.yaml`, package data) is the only place a default is written:
`validate` fills them into a config, and library code called without a config reads them through
`defaults(section)` / `with_defaults(section, given)`. `check` adds the rules a JSON schema cannot
express. Both fail before any job runs, naming the key.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import importlib.util
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archive_encoders.methods import METHOD_TYPES

SCHEMA_RESOURCE = "schema/config.schema.yaml"
RESERVED_MODEL_NAME = "bm25"  # results/eval/bm25 holds the lexical row


class ConfigError(ValueError):
    """A configuration value that the workflow cannot run with; the message names the key."""


def _model_default(key: str):
    """A ModelSpec field whose default is the schema's (models.*): one place for each default."""
    return field(default_factory=lambda: defaults("models.*")[key])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str
    query_prefix: str = _model_default("query_prefix")
    passage_prefix: str = _model_default("passage_prefix")
    pooling: str = _model_default("pooling")
    max_seq_length: int = _model_default("max_seq_length")
    trust_remote_code: bool = _model_default("trust_remote_code")
    encoder_type: str = _model_default("encoder_type")

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> ModelSpec:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in entry.items() if k in fields})

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def encoding(self) -> dict[str, Any]:
        """What decides a text's embedding under sentence-transformers: the weights (the resolved folder
        or hub id, not the config's name for them), the sequence length and each role's prefix. Two
        specs with the same encoding give the same embeddings (datasets/reuse.py)."""
        try:
            path = resolve_model_path(self.path)
        except ConfigError:  # a package not installed: the path as written still names the weights
            path = self.path
        return {
            "path": path,
            "max_seq_length": self.max_seq_length,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
        }


def resolve_model_path(path: str) -> str:
    """Turn `package://pkg/sub` into the folder inside the installed package; other paths pass through."""
    if path.startswith("package://"):
        package, _, sub = path.removeprefix("package://").partition("/")
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError, TypeError):  # a dotted name whose parent is missing, "", ".x"
            spec = None
        if spec is None or spec.origin is None:
            raise ConfigError(f"model path {path!r}: Python package {package!r} is not installed")
        return str(Path(spec.origin).parent / sub)
    return path


def is_local_path(path: str) -> bool:
    """A path that names a local folder rather than a hub id (`org/name`)."""
    return path.startswith(("/", "./", "../", "~", "package://")) or os.path.exists(path)


@functools.cache
def _schema_text() -> str:
    return importlib.resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    """The config schema (a fresh copy: callers may not change the cached one)."""
    return copy.deepcopy(_parsed_schema())


@functools.cache
def _parsed_schema() -> dict[str, Any]:
    # the C loader: Snakemake's reader costs 0.15 s of CPU at every workflow start, and every cluster
    # job parses the workflow twice
    return yaml.load(_schema_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if ref:  # only local refs: "#/definitions/<name>"; the node's own keys override the target's
        target = _parsed_schema()
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _default_of(node: Mapping[str, Any]) -> Any:
    """A property's default: its own `default`, merged over the defaults of its sub-properties."""
    node = _resolve(node)
    nested = {
        name: _default_of(sub)
        for name, sub in node.get("properties", {}).items()
        if "default" in _resolve(sub) or "properties" in _resolve(sub)
    }
    if "default" not in node:
        return nested
    value = copy.deepcopy(node["default"])
    if isinstance(value, dict):
        return {**nested, **value}
    return value


def defaults(section: str = "") -> Any:
    """The schema's defaults under a dotted section: `defaults("export")`, `defaults("datasets.split")`.

    `name.*` is the entry schema of a mapping or a list: `defaults("methods.*")` gives every method
    hyperparameter's default, `defaults("evaluate.sts.*")` an STS entry's. An empty section gives the
    defaults of the whole config.
    """
    node: Mapping[str, Any] = _parsed_schema()
    for part in filter(None, section.split(".")):
        node = _resolve(node)
        if part == "*":  # the entries of a mapping (methods) or of a list (evaluate.sts)
            node = node["additionalProperties"] if "additionalProperties" in node else node["items"]
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            raise KeyError(f"the config schema has no section {section!r}")
    return _default_of(node)


def default_seed(seed: int | None) -> int:
    """`seed` itself, or the config's default seed (the schema's) when none is given."""
    return defaults("seed") if seed is None else seed


def with_defaults(section: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """`given` (a config section, possibly partial) over the schema's defaults, merged key by key."""
    return _merge(defaults(section), given or {})


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, Mapping):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Schema validation with defaults filled in, then `check`.

    The defaults are filled as `snakemake.utils.validate(..., set_default=True)` does (jsonschema's
    documented extension).
    """
    import jsonschema

    _refuse_non_finite(config)
    schema_doc = _parsed_schema()
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema_doc).iter_errors(config))
    if error is not None:
        raise ConfigError(f"config key {_dotted(error.absolute_path)}: {_error_message(error)}")
    _with_defaults(jsonschema.Draft202012Validator)(schema_doc).validate(config)  # valid: fills defaults
    with_judged_set(config)
    check(config)
    return config


def _error_message(error) -> str:
    """jsonschema's message, except that a URL holding a password is never echoed."""
    if isinstance(error.instance, str) and re.match(r"[a-z]+://[^/]*@", error.instance):
        return "a URL must not hold credentials (user:password@); use ia.ini or IA_* variables"
    return error.message


def _refuse_non_finite(node: Any, path: tuple = ()) -> None:
    """NaN and infinity (YAML's .nan, .inf) pass every JSON-schema bound, since no comparison with NaN is
    true: refuse them anywhere in the config."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"config key {_dotted(path)}: {node} is not a finite number")
    if isinstance(node, Mapping):
        for key, value in node.items():
            _refuse_non_finite(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_non_finite(value, (*path, i))


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
        text += f"[{part}]" if isinstance(part, int) and not isinstance(part, bool) else f".{part}"
    return text.lstrip(".") or "<root>"


def load(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return validate(yaml.safe_load(fh) or {})


SEED_SUFFIX = "-seed"  # a method's repeat with another seed: results/models/<model>/<method>-seed<N>/


def method_runs(config: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Every trained run, by the name its results go under: name -> (configured method, training seed).

    With `seeds`, every method that learns runs once per seed (the first keeps the method's name);
    baseline trains nothing and runs once. Without, each method runs once with `seed`."""
    seeds = config["seeds"] or [config["seed"]]
    runs: dict[str, tuple[str, int]] = {}
    for method, params in config["methods"].items():
        learns = METHOD_TYPES[params.get("type") or method].trains != "nothing"
        for i, seed in enumerate(seeds if learns else seeds[:1]):
            runs[method if i == 0 else f"{method}{SEED_SUFFIX}{seed}"] = (method, seed)
    return runs


def run_seed(config: dict[str, Any], run: str) -> int:
    """The training seed of a run (`full-seed14` -> 14)."""
    base_method(config, run)
    return method_runs(config)[run][1]


def base_method(config: dict[str, Any], run: str) -> str:
    """The configured method a run repeats (`full-seed14` -> `full`)."""
    runs = method_runs(config)
    if run not in runs:
        raise ConfigError(f"methods: {run!r} is neither a configured method nor a seeded repeat of one")
    return runs[run][0]


def method_type(config: dict[str, Any], method: str) -> str:
    """The type of a configured method or of a seeded run of one (`type`, by default the method's name)."""
    method = base_method(config, method)
    return config["methods"][method].get("type") or method


def check(config: dict[str, Any]) -> None:
    """Cross-key rules on a config whose defaults are filled in: unique names, known method types,
    existing local paths, teachers of the right kind, exclusions that
    name something, sizes that fit."""
    _check_names(config)
    _check_user_set_names(config)
    _check_methods(config)
    _check_sizes(config)


def _check_names(config: dict[str, Any]) -> None:
    names = [m["name"] for m in config["models"]]
    if RESERVED_MODEL_NAME in names:
        raise ConfigError(
            f"models: the name {RESERVED_MODEL_NAME!r} is the keyword-search row's; rename the model"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"models: duplicate model name(s) {duplicates}")
    teacher_names = [t["name"] for t in config["teachers"]]
    clash = sorted(set(teacher_names) & set(names) | {n for n in teacher_names if teacher_names.count(n) > 1})
    if clash:
        raise ConfigError(f"teachers: name(s) {clash} used twice (teachers and models share one namespace)")

    for key, entries in (("models", config["models"]), ("teachers", config["teachers"])):
        for i, entry in enumerate(entries):
            path = entry["path"]
            try:
                local = resolve_model_path(path)
            except ConfigError as err:
                raise ConfigError(f"{key}[{i}].path: {err}") from None
            if is_local_path(path) and not _is(local, f"{key}[{i}].path", Path.is_dir):
                raise ConfigError(f"{key}[{i}].path: model folder {path!r} does not exist")
    for i, entry in enumerate(config["models"]):
        if entry["encoder_type"] != "bi-encoder":
            raise ConfigError(
                f"models[{i}].encoder_type: a candidate must be a bi-encoder (a cross-encoder "
                "can only be a gpl teacher, under `teachers`)"
            )

    for i, pair in enumerate(config["exclude"]):
        if pair["model"] not in names:
            raise ConfigError(f"exclude[{i}].model: {pair['model']!r} is not a configured model")
        if pair["method"] not in config["methods"]:
            raise ConfigError(f"exclude[{i}].method: {pair['method']!r} is not a configured method")
    for method in config["methods"]:
        for seed in config["seeds"][1:]:
            if f"{method}{SEED_SUFFIX}{seed}" in config["methods"]:
                raise ConfigError(
                    f"seeds: the repeat of methods.{method} with seed {seed} would be named "
                    f"{method}{SEED_SUFFIX}{seed}, which is a configured method already"
                )


def builtin_set_names() -> list[str]:
    """The built-in query sets (datasets/querysets.py SET_KINDS), as the schema lists them for
    datasets.retrieval.sets: this module may not import datasets/, and a test keeps the two equal."""
    retrieval = _parsed_schema()["properties"]["datasets"]["properties"]["retrieval"]
    return list(retrieval["properties"]["sets"]["items"]["enum"])


def _check_user_set_names(config: dict[str, Any]) -> None:
    """A user set shares the test split's results with the built-in sets, keyed by name: a clash would
    overwrite a set's scores and fail only in compare_retrievers, after every evaluation."""
    names = [entry["name"] for entry in config["evaluate"]["retrieval_sets"]]
    builtin = set(builtin_set_names())
    for i, name in enumerate(names):
        if name in builtin:
            raise ConfigError(
                f"evaluate.retrieval_sets[{i}].name: {name!r} is a built-in query set's name; rename the set"
            )
        if name in names[:i]:
            raise ConfigError(
                f"evaluate.retrieval_sets[{i}].name: {name!r} names retrieval_sets[{names.index(name)}] too"
            )


def _check_methods(config: dict[str, Any]) -> None:
    """Per method: a known type, the teacher it needs, mini-batches that divide the batch."""
    names = [m["name"] for m in [*config["models"], *config["teachers"]]]
    for name, params in config["methods"].items():
        kind = params.get("type") or name
        if kind not in METHOD_TYPES:
            raise ConfigError(
                f"methods.{name}: unknown method {kind!r}; "
                f"set methods.{name}.type to one of {list(METHOD_TYPES)}"
            )
        mt = METHOD_TYPES[kind]
        if mt.teacher:
            teacher = params.get("teacher")
            if not teacher:
                raise ConfigError(
                    f"methods.{name}.teacher: {kind} needs a teacher (a name from teachers/models)"
                )
            if teacher not in names:
                raise ConfigError(f"methods.{name}.teacher: {teacher!r} is not in teachers or models")
            if mt.teacher == "bi-encoder" and model_spec(config, teacher).encoder_type != "bi-encoder":
                raise ConfigError(
                    f"methods.{name}.teacher: {kind} learns a teacher's embeddings, and {teacher!r} is a "
                    "cross-encoder (it has none); use a bi-encoder, or a gpl method for a cross-encoder"
                )
        for phase in mt.phases_for(params):
            settings = mt.settings_for(phase, params)
            key = f"methods.{name}" + next(
                (f".{k}" for _, (p, k) in mt.optional.items() if p == phase and p not in mt.phases), ""
            )
            if (
                settings["batch_size"] % settings["mini_batch_size"]
                and settings["mini_batch_size"] < settings["batch_size"]
            ):
                raise ConfigError(
                    f"{key}.mini_batch_size: {settings['mini_batch_size']} must divide batch_size "
                    f"({settings['batch_size']}), or be at least as large"
                )


def _check_sizes(config: dict[str, Any]) -> None:
    archive = config["archive"]
    if archive["source"] == "remote" and not archive.get("query"):
        raise ConfigError("archive.query: required when archive.source is remote")
    if archive["source"] == "local" and not archive["local_dir"]:
        raise ConfigError("archive.local_dir: required when archive.source is local")

    queries = config["judging"].get("queries")
    if queries and not _is(queries, "judging.queries", Path.is_file):
        raise ConfigError(f"judging.queries: {queries!r} is not a file")
    for i, entry in enumerate(config["evaluate"]["retrieval_sets"]):
        if not _is(entry["path"], f"evaluate.retrieval_sets[{i}].path", Path.is_dir):
            raise ConfigError(f"evaluate.retrieval_sets[{i}].path: {entry['path']!r} is not a folder")

    chunk = config["chunk"]
    if chunk["overlap_tokens"] >= chunk["max_tokens"]:
        raise ConfigError("chunk.overlap_tokens: must be smaller than chunk.max_tokens")
    split = config["datasets"]["split"]
    if split["val"] + split["test"] >= 1:
        raise ConfigError("datasets.split: val + test must leave documents for training")
    negatives = config["datasets"]["hard_negatives"]
    if negatives["range_max"] - negatives["range_min"] < negatives["num_negatives"]:
        raise ConfigError(
            "datasets.hard_negatives: range_max - range_min must leave room for num_negatives candidates"
        )
    if not any(training_query_kinds(config).values()):
        raise ConfigError(
            "datasets.query_kinds: at least one kind not in datasets.heldout_kinds needs a weight above 0"
        )


def _expanded(path: str, key: str) -> Path:
    """`path` with `~` expanded; `~someone` naming no user is the config's error, not a traceback."""
    try:
        return Path(path).expanduser()
    except RuntimeError as err:
        raise ConfigError(f"{key}: {path!r}: {err}") from None


def _is(path: str, key: str, kind) -> bool:
    """`kind` (Path.is_dir, Path.is_file) of the expanded path; a name the filesystem refuses (too long,
    say) is the config's error naming `key`, not a traceback."""
    try:
        return kind(_expanded(path, key))
    except OSError as err:
        raise ConfigError(f"{key}: {path[:80]!r}: {err.strerror}") from None


JUDGED_SET_NAME = "judged"


def judged_queries(folder: str | os.PathLike) -> int:
    """Queries in an exported judged set (lines of its BEIR queries.jsonl); 0 when there is none."""
    path = _expanded(folder, "judging.judged_set") / "queries.jsonl"
    if not _is(str(path), "judging.judged_set", Path.is_file):
        return 0
    with open(path, encoding="utf-8", errors="replace") as fh:  # counting lines needs no valid text
        return sum(1 for line in fh if line.strip())


def with_judged_set(config: dict[str, Any]) -> dict[str, Any]:
    """The config with judging.judged_set among evaluate.retrieval_sets (as `judged`) when it is to be
    used: use_in_verdict true, or null and at least judging.min_queries queries judged."""
    judging = config["judging"]
    folder, use = judging.get("judged_set"), judging.get("use_in_verdict")
    if not folder or use is False:
        return config
    count = judged_queries(folder)
    if use is None and count < judging["min_queries"]:
        return config
    if not count:
        raise ConfigError(f"judging.judged_set: {folder!r} holds no judged queries (queries.jsonl)")
    sets = config["evaluate"]["retrieval_sets"]
    if any(s["name"] == JUDGED_SET_NAME for s in sets):
        raise ConfigError(f"evaluate.retrieval_sets: {JUDGED_SET_NAME!r} is the name judging.judged_set uses")
    config["evaluate"]["retrieval_sets"] = [*sets, {"name": JUDGED_SET_NAME, "path": str(folder)}]
    return config


def training_query_kinds(config: dict[str, Any]) -> dict[str, float]:
    """The weights training pairs are mixed by: datasets.query_kinds with datasets.heldout_kinds at 0."""
    held_out = set(config["datasets"].get("heldout_kinds") or ())
    return {k: 0.0 if k in held_out else w for k, w in config["datasets"]["query_kinds"].items()}


def matrix(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (model, run) pair to train, in config order, minus `exclude` (which names configured
    methods: it leaves out their seeded repeats too). A run is a method or a seeded repeat of one."""
    excluded = {(e["model"], e["method"]) for e in config["exclude"]}
    runs = method_runs(config)
    return [
        (m["name"], run)
        for m in config["models"]
        for run, (method, _) in runs.items()
        if (m["name"], method) not in excluded
    ]


def method_params(config: dict[str, Any], run: str) -> dict[str, Any]:
    """A run's hyperparameters as the training job takes them: the method's entry with its `type`, the
    method it repeats (`base_method`) and its teacher's model entry."""
    method = base_method(config, run)
    params = copy.deepcopy(config["methods"][method])
    params["type"] = params.get("type") or method
    params["base_method"] = method
    if METHOD_TYPES[params["type"]].teacher:
        params["teacher_model"] = model_spec(config, params["teacher"]).as_dict()
    return params


def model_spec(config: dict[str, Any], name: str) -> ModelSpec:
    """A candidate or teacher by name; an unknown name is taken as a path (for miner/tokenizer keys)."""
    for entry in [*config["models"], *config["teachers"]]:
        if entry["name"] == name:
            return ModelSpec.from_config(entry)
    return ModelSpec(name=Path(name).name or name, path=name)


def reference_model(config: dict[str, Any], key: str | None) -> ModelSpec:
    """The model named by an optional key (chunk.tokenizer_model, datasets.miner_model); default the first."""
    return model_spec(config, key) if key else ModelSpec.from_config(config["models"][0])
