"""The whole workflow, end to end, through the real snakemake on the tiny model and the demo corpus; then
SIGKILLed mid-stage, rerun, and the same outputs as the uninterrupted run.

One module, so that `pytest --dist loadfile` runs every user of the full_run fixture on one worker."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import numpy as np
import polars as pl
import pytest
from conftest import (
    METHODS,
    PARALLEL,
    REPO,
    SNAKEMAKE,
    prepare_workdir,
    run_snakemake,
    tiny_config,
    write_config,
)

from archive_encoders import paths
from archive_encoders.corpus.manifest import (
    SHARD_FILES,
    read_manifest,
    scan_chunks,
    scan_documents,
    scan_rejected,
)
from archive_encoders.io import read_json
from archive_encoders.variants import NAMES as VARIANT_NAMES

pytestmark = pytest.mark.e2e


def test_every_stage_produces_its_outputs(full_run):
    workdir, config = full_run
    manifest = workdir / "results/corpus/corpus.json"
    assert read_manifest(manifest)["counts"]["shards"] == 2
    chunks = scan_chunks(manifest).collect()
    assert chunks.height > 0 and chunks["n_tokens"].max() <= 64
    summary = pl.read_parquet(workdir / "results/report/summary.parquet")
    dense = summary.filter(pl.col("retriever") == "dense")
    assert set(dense.select("method", "variant").rows()) == {(m, v) for m in METHODS for v in VARIANT_NAMES}
    sets = set(summary["query_set"])
    assert {"ict", "keyword", "title"} <= sets
    # one row per dense row and set, the same for each hybrid, and BM25 once per set
    hybrids = summary.filter(pl.col("retriever").str.starts_with("hybrid-"))
    assert hybrids.height <= 2 * dense.height and summary.filter(
        pl.col("retriever") == "lexical"
    ).height == len(sets)
    keys = summary.select("model", "method", "variant", "retriever", "query_set").rows()
    assert len(keys) == len(set(keys))
    recommendation = read_json(workdir / "results/report/recommendation.json")
    assert (
        recommendation["rule"] in ("non-inferior", "smallest worst-case loss") and recommendation["artefact"]
    )
    assert (workdir / "results/index/recommended/index.json").is_file()
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


# --- killed and resumed ---

KILL_METHODS = {name: METHODS[name] for name in ("baseline", "lora", "distill")}
DETERMINISTIC = [
    "results/corpus/items.parquet",
    *(
        f"results/corpus/shards/{shard}/{kind}.parquet"
        for shard in ("00000", "00001")
        for kind in SHARD_FILES
    ),
    "results/corpus/dedupe.parquet",
    "results/datasets/splits.parquet",
    "results/datasets/tsdae.parquet",
    "results/datasets/triplets.parquet",
    *(f"results/datasets/querysets/{split}/corpus.parquet" for split in ("val", "test")),
    *(
        f"results/datasets/querysets/test/{name}/{table}.parquet"
        for name in ("ict", "keyword")
        for table in ("queries", "qrels", "overrides")
    ),
]


def start(workdir, config_file, *targets):
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(config_file),
        "--cores",
        "2",
        *PARALLEL,
        *targets,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def kill_when_running(proc, rule: str, workdir, log_glob: str, timeout: float = 600) -> str:
    """SIGKILL the whole process group once `rule`'s job has started writing its log."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(f"rule {rule}:" in line for line in lines) and list(workdir.glob(log_glob)):
            time.sleep(0.5)  # inside the job: imports done, work under way
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"workflow ended before {rule} could be killed:\n{''.join(lines)[-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return "".join(lines)


def assert_no_corrupt_outputs(workdir):
    """Whatever carries a final name is complete: every Parquet file under results/ reads back."""
    for path in (workdir / "results").rglob("*.parquet"):
        if not path.name.startswith("."):
            pl.read_parquet(path)


def same_weights(folder, reference) -> bool:
    """A trained model's tensors equal the reference run's (training on CPU, seeded, is deterministic)."""
    from safetensors.numpy import load_file

    got, want = load_file(folder / "model.safetensors"), load_file(reference / "model.safetensors")
    return got.keys() == want.keys() and all(np.allclose(got[k], want[k], atol=1e-6) for k in want)


def test_killed_workflow_resumes_to_identical_outputs(tmp_path, tiny_model, full_run):
    """Killed in a corpus job, in mining, in training and in an export; resumed up to the exports (the
    jobs after them read only finished files, as every job does)."""
    reference, _ = full_run  # the same data settings, uninterrupted; its matrix has more methods
    config = tiny_config(KILL_METHODS)

    workdir = prepare_workdir(tmp_path / "killed", tiny_model)
    config_file = write_config(workdir / "test-config.yaml", config)
    exports = [paths.ONNX.format(model="tiny", method=method) for method in KILL_METHODS]
    for rule, log_glob in [
        ("clean_shard", "logs/corpus/clean_shard/*.log"),
        ("mine_triplets", "logs/datasets/mine_triplets.log"),
        ("train_model", "logs/train/tiny/*.log"),
        ("export_onnx", "logs/export/tiny/*.log"),
    ]:
        kill_when_running(start(workdir, config_file, *exports), rule, workdir, log_glob)
        assert_no_corrupt_outputs(workdir)
        run_snakemake(workdir, config, "--unlock")
    # `datasets` too: this matrix has no TSDAE method, so the exports alone would not build the TSDAE pairs
    run_snakemake(workdir, config, "datasets", *exports)

    for name in DETERMINISTIC:
        expected, actual = pl.read_parquet(reference / name), pl.read_parquet(workdir / name)
        assert actual.equals(expected), name
    manifest = "results/corpus/corpus.json"
    for scan in (scan_documents, scan_chunks, scan_rejected):  # the corpus as later stages read it
        assert scan(workdir / manifest).collect().equals(scan(reference / manifest).collect()), scan.__name__
    for method in KILL_METHODS:
        model = paths.MODEL.format(model="tiny", method=method)
        assert same_weights(workdir / model, reference / model), model
        onnx = paths.ONNX.format(model="tiny", method=method)
        got, want = (read_json(run / onnx / "fidelity.json")["variants"] for run in (workdir, reference))
        assert got.keys() == want.keys(), onnx
        for variant, figures in want.items():  # the same export of the same weights
            assert got[variant]["passed"] == figures["passed"], (onnx, variant)
            assert got[variant]["mean_cosine"] == pytest.approx(figures["mean_cosine"], abs=1e-5), (
                onnx,
                variant,
            )
