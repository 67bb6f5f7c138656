"""The whole workflow, end to end, through the real snakemake on the tiny model and the demo corpus."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from conftest import DEMO_ARCHIVE, REPO, run_snakemake

pytestmark = pytest.mark.e2e

METHODS = {
    "baseline": {},
    "full": {"max_steps": 3, "batch_size": 8, "learning_rate": 1.0e-3},
    "lora": {"max_steps": 3, "batch_size": 8, "learning_rate": 1.0e-3, "lora_r": 4, "lora_alpha": 8},
    "qlora": {"max_steps": 2, "batch_size": 4, "learning_rate": 1.0e-3, "lora_r": 4, "lora_alpha": 8},
    "tsdae": {"max_steps": 2, "batch_size": 4, "then_mnrl": True},
    "distill": {"max_steps": 3, "batch_size": 8, "teacher": "tiny", "student_layers": 1},
}


def tiny_config(methods=None) -> dict:
    """The smallest config that exercises every stage: demo corpus, tiny model, a few steps per method."""
    return {
        "device": "cpu",
        "archive": {"source": "local", "local_dir": "archive"},
        "clean": {"languages": ["ru", "en"], "min_chars": 300},
        "chunk": {"max_tokens": 64, "overlap_tokens": 8},
        "datasets": {
            "split": {"val": 0.15, "test": 0.25},
            "max_pairs": 300,
            "hard_negatives": {"range_min": 0, "range_max": 10},
            "retrieval": {"max_queries": 40, "distractors": 100},
        },
        "models": [{"name": "tiny", "path": "./models/tiny", "max_seq_length": 64}],
        "methods": methods or METHODS,
        "export": {"fidelity_samples": 8},
        "evaluate": {"bootstrap_samples": 50, "sts": [{"name": "small", "path": "sts_small.csv"}]},
        "latency": {"warmup": 1, "repeats": 5, "throughput_batch": 8},
    }


def prepare_workdir(workdir, model_path):
    """A working directory holding its own copy of the demo archive, the tiny model and the STS fixture.

    Everything is addressed by relative paths, so no absolute path has a reason to reach the outputs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(DEMO_ARCHIVE, workdir / "archive", dirs_exist_ok=True)
    shutil.copytree(model_path, workdir / "models" / "tiny", dirs_exist_ok=True)
    shutil.copy(REPO / "tests" / "fixtures" / "sts_small.csv", workdir / "sts_small.csv")
    return workdir


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, tiny_model):
    workdir = prepare_workdir(tmp_path_factory.mktemp("e2e"), tiny_model)
    config = tiny_config()
    run_snakemake(workdir, config)
    return workdir, config


def test_every_stage_produces_its_outputs(full_run):
    workdir, config = full_run
    chunks = pl.read_parquet(workdir / "results/corpus/chunks.parquet")
    assert chunks.height > 0 and chunks["n_tokens"].max() <= 64
    summary = pl.read_parquet(workdir / "results/report/summary.parquet")
    expected = {(m, v) for m in METHODS for v in ("torch", "onnx-fp32", "onnx-int8")}
    assert set(zip(summary["method"], summary["variant"], strict=True)) == expected
    assert summary.height == len(expected)
    assert (workdir / "results/report/pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for method in METHODS:
        assert (workdir / f"results/models/tiny/{method}/train_metrics.json").is_file()
        assert (workdir / f"results/onnx/tiny/{method}/model_int8.onnx").is_file()


def test_second_run_does_nothing(full_run):
    workdir, config = full_run
    result = run_snakemake(workdir, config, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_no_absolute_paths_in_results_or_logs(full_run):
    workdir, _ = full_run
    needle = str(workdir).encode()
    offenders = [
        str(p.relative_to(workdir))
        for folder in ("results", "logs")
        for p in (workdir / folder).rglob("*")
        if p.is_file() and p.suffix in {".json", ".parquet", ".csv", ".md", ".log", ".txt"}
        and needle in p.read_bytes()
    ]
    assert offenders == []
