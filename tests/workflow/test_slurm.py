"""The workflow on a real one-node SLURM cluster, through `snakemake --profile profiles/slurm`.

cluster/slurm_up.sh installs and starts the cluster (session fixture; stopped at the end if this session
started it). Where it cannot (not root, not Debian/apt), the tests are skipped with the script's reason;
with CI=true on a root Debian machine that is a failure instead, so CI can never be silently green.

The corpus stage of the demo (search, download, assign_shards and corpus_manifest are localrules; each of
the demo's shards is cleaned and chunked by cluster jobs, and dedupe_corpus is one more) is run locally and
through SLURM. Checked: each cluster rule's job was submitted with
sbatch (its SLURM job id, from the plugin's log, is COMPLETED in `scontrol show job` with the rule in its
comment, and SLURM's log of it is kept under logs/slurm/), localrules ran on this host, the parquet
outputs equal the local run's, and a job made to fail makes snakemake exit non-zero, naming the failed
rule and SLURM job, within a bounded time (status checks are made fast for the test; the profile's own
values suit a real cluster's queue).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import CLUSTER_ENV

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SLURM_UP = REPO / "cluster" / "slurm_up.sh"
SLURM_DOWN = REPO / "cluster" / "slurm_down.sh"
PROFILE = REPO / "profiles" / "slurm"
EXIT_UNSUPPORTED = 77  # slurm_up.sh: SLURM cannot be installed here
# Status checks for a test (the profile's 20 s suits a real queue). The plugin checks every X seconds
# while no job is out, then waits X + 10 s after a check that finds none finished: X = 4 catches these
# 10-15 s jobs at the second check. The cluster's MinJobAge (600 s) is far above 3 X.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "4", "--seconds-between-status-checks", "4")
RUN_TIMEOUT_S = 300
FAIL_TIMEOUT_S = 240
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")

pytestmark = pytest.mark.slurm


def root_on_debian() -> bool:
    return os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node cluster; skipped (CI: failed) where slurm_up.sh cannot install SLURM."""
    result = subprocess.run([str(SLURM_UP)], capture_output=True, text=True, timeout=900, env=CLUSTER_ENV)
    if result.returncode == EXIT_UNSUPPORTED:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "slurm_up.sh: exit 77"
        if os.environ.get("CI") == "true" and root_on_debian():
            pytest.fail(f"CI on a root Debian machine must run the SLURM tests, but: {reason}")
        pytest.skip(reason)
    if result.returncode != 0:
        pytest.fail(f"slurm_up.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    started_here = result.stdout.strip().splitlines()[-1] == "started"
    yield
    if started_here:  # leave a cluster that someone else started running
        subprocess.run(
            [str(SLURM_DOWN)], capture_output=True, text=True, timeout=60, check=False, env=CLUSTER_ENV
        )


def run(workdir: Path, snakefile: Path, config: dict, *args: str, timeout: float) -> tuple[int, str, float]:
    """Run snakemake in `workdir`; returns (exit code, stdout+stderr, seconds). A hang fails the test."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    # --configfile takes several values: it goes last, after the targets.
    cmd = [str(SNAKEMAKE), "--snakefile", str(snakefile), "--directory", str(workdir), *args]
    cmd += ["--configfile", str(configfile)]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=CLUSTER_ENV
        )
    except subprocess.TimeoutExpired as err:
        output = "".join(
            part.decode(errors="replace") if isinstance(part, bytes) else part
            for part in (err.stdout or "", err.stderr or "")
        )
        cancel([slurm_id for _, slurm_id, _ in SUBMITTED.findall(output)])
        pytest.fail(
            f"snakemake did not finish within {timeout} s (a hang):\n{' '.join(cmd)}\n{output[-6000:]}"
        )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, check=False, env=CLUSTER_ENV)


def submitted(output: str) -> dict[str, list[tuple[str, Path]]]:
    """{rule: [(SLURM job id, SLURM log file)]} from the plugin's 'has been submitted' lines."""
    jobs: dict[str, list[tuple[str, Path]]] = {}
    for _, slurm_id, log in SUBMITTED.findall(output):
        rule = next(part.removeprefix("rule_") for part in Path(log).parts if part.startswith("rule_"))
        jobs.setdefault(rule, []).append((slurm_id, Path(log)))
    return jobs


def job_info(slurm_id: str) -> dict[str, str]:
    """`scontrol show job` as a dict (the cluster keeps finished jobs for MinJobAge = 600 s)."""
    out = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", slurm_id],
        capture_output=True,
        text=True,
        check=True,
        env=CLUSTER_ENV,
    ).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)


def slurm_args(*extra: str) -> tuple[str, ...]:
    return ("--profile", str(PROFILE), *FAST_STATUS, *extra)


# --- the corpus stage of the real workflow on the demo corpus: search, download, assign_shards and
# corpus_manifest are localrules (run here), the per-shard jobs and dedupe_corpus are cluster jobs ---

PER_SHARD_RULES = ("clean_shard", "chunk_shard")  # one cluster job per shard; dedupe_corpus one in all
LOCAL_RULES = ("search_archive", "download_archive", "assign_shards", "corpus_manifest")


def demo_config() -> dict:
    """demo/config.yaml with its relative paths made absolute (the tests run in temporary folders)."""
    config = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    config["archive"]["local_dir"] = str(REPO / config["archive"]["local_dir"])
    for sts in config.get("evaluate", {}).get("sts", []):
        sts["path"] = str(REPO / sts["path"])
    if config.get("judging", {}).get("queries"):
        config["judging"]["queries"] = str(REPO / config["judging"]["queries"])
    return config


def corpus_frames(workdir: Path) -> dict:
    """items, downloads, every shard file, the dedupe table, and the corpus as read through its manifest."""
    import polars as pl

    from archive_encoders.corpus import manifest as corpus

    results = workdir / "results" / "corpus"
    frames = {str(p.relative_to(results)): pl.read_parquet(p) for p in sorted(results.rglob("*.parquet"))}
    for scan in (corpus.scan_documents, corpus.scan_chunks, corpus.scan_rejected):
        frames[scan.__name__] = scan(results / "corpus.json").collect()
    return frames


@pytest.fixture(scope="module")
def slurm_corpus_run(slurm_cluster, tmp_path_factory):
    """The corpus stage run once locally and once through the slurm profile."""
    root = tmp_path_factory.mktemp("slurm-corpus")
    snakefile = REPO / "Snakefile"
    code, output, _ = run(
        root / "local", snakefile, demo_config(), "corpus", "--cores", "2", timeout=RUN_TIMEOUT_S
    )
    assert code == 0, output
    code, output, seconds = run(
        root / "slurm", snakefile, demo_config(), "corpus", *slurm_args(), timeout=RUN_TIMEOUT_S
    )
    print(f"corpus stage under SLURM: {seconds:.1f} s")
    return root, code, output


def shard_count(workdir: Path) -> int:
    """How many shards the local run made (the demo's item count over its items_per_shard)."""
    return len(list((workdir / "results" / "corpus" / "shards").iterdir()))


def test_corpus_stage_runs_as_slurm_jobs(slurm_corpus_run):
    root, code, output = slurm_corpus_run
    assert code == 0, output
    workdir = root / "slurm"
    jobs = submitted(output)
    shards = shard_count(root / "local")
    assert shards > 1
    expected = {rule: shards for rule in PER_SHARD_RULES} | {"dedupe_corpus": 1}
    assert {rule: len(ids) for rule, ids in jobs.items()} == expected, output  # LOCAL_RULES ran here
    for rule, submissions in jobs.items():
        for slurm_id, log in submissions:
            info = job_info(slurm_id)
            assert info["JobState"] == "COMPLETED", info
            assert info["Comment"].startswith(f"rule_{rule}"), info
            assert Path(info["WorkDir"]) == workdir
            # SLURM's own log of the job, kept by the profile under logs/slurm/rule_<rule>/.
            assert log.is_relative_to(workdir / "logs" / "slurm" / f"rule_{rule}"), log
            assert f"rule {rule}:" in log.read_text()
    for rule in LOCAL_RULES:
        assert f"localrule {rule}:" in output or f"localcheckpoint {rule}:" in output, rule


def test_corpus_stage_under_slurm_equals_local_run(slurm_corpus_run):
    root, code, output = slurm_corpus_run
    assert code == 0, output
    local, slurm = corpus_frames(root / "local"), corpus_frames(root / "slurm")
    assert set(slurm) == set(local) and len(slurm) > 3 * 4
    for name in local:
        assert slurm[name].height > 0 or name.endswith("rejected.parquet"), name
        assert slurm[name].equals(local[name]), f"{name}.parquet differs between the SLURM and the local run"


def test_failing_job_fails_the_run_instead_of_hanging(slurm_corpus_run, tmp_path):
    """chunk_shard pointed at a folder with no tokenizer: passes the config checks, fails in the jobs."""
    root, code, output = slurm_corpus_run
    assert code == 0, output
    workdir = tmp_path / "fail"
    shutil.copytree(root / "slurm", workdir, symlinks=True)  # finished corpus: only chunking reruns
    no_tokenizer = tmp_path / "not-a-tokenizer"
    no_tokenizer.mkdir()
    config = demo_config()
    config["chunk"]["tokenizer_model"] = str(no_tokenizer)
    # one shard's chunks: one job, so the bound holds on a loaded machine (the jobs run one at a time)
    shard = sorted((workdir / "results/corpus/shards").iterdir())[0].name
    target = f"results/corpus/shards/{shard}/chunks.parquet"
    code, output, seconds = run(
        workdir, REPO / "Snakefile", config, target, *slurm_args(), timeout=FAIL_TIMEOUT_S
    )
    print(f"failing chunk job under SLURM: {seconds:.1f} s")
    assert code != 0, output
    failed = submitted(output)["chunk_shard"]
    assert len(failed) == 1, output
    assert "Error in rule chunk_shard" in output
    slurm_id, _ = failed[0]
    assert f"SLURM-job '{slurm_id}' failed" in output
    assert job_info(slurm_id)["JobState"] == "FAILED"
    # the reason, in the rule's log
    assert "Traceback" in (workdir / f"logs/corpus/chunk_shard/{shard}.log").read_text()
    # no stale result under a final name
    assert not (workdir / target).exists()
