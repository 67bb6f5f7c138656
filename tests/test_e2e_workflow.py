"""The whole workflow, end to end, through the real snakemake on the tiny model and the demo corpus."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import METHODS, run_snakemake

from archive_encoders.corpus import read_manifest, scan_chunks
from archive_encoders.variants import NAMES as VARIANT_NAMES

pytestmark = pytest.mark.e2e


def test_every_stage_produces_its_outputs(full_run):
    workdir, config = full_run
    manifest = workdir / "results/corpus/corpus.json"
    assert read_manifest(manifest)["counts"]["shards"] == 2
    chunks = scan_chunks(manifest).collect()
    assert chunks.height > 0 and chunks["n_tokens"].max() <= 64
    summary = pl.read_parquet(workdir / "results/report/summary.parquet")
    expected = {(m, v) for m in METHODS for v in VARIANT_NAMES}
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
        if p.is_file()
        and p.suffix in {".json", ".parquet", ".csv", ".md", ".log", ".txt"}
        and needle in p.read_bytes()
    ]
    assert offenders == []
