"""Where the demo's time goes: every job's Snakemake benchmark file, summed per rule.

    time make demo && .venv/bin/python benchmarks/demo_time.py [--workdir .]

Each job writes logs/benchmarks/<rule>[/<job>].tsv (paths.benchmark: wall seconds, CPU seconds, peak
RSS). Prints per rule: jobs, wall seconds summed and the largest job, CPU seconds summed (user + system;
above wall means the job used more than one core), and peak RSS; then the sums. The sum of wall seconds
over the workflow's elapsed time is how many jobs ran side by side on average.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import polars as pl

from archive_encoders.paths import BENCHMARKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    args = parser.parse_args()
    root = args.workdir / BENCHMARKS
    per_rule: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(root.rglob("*.tsv")):
        rule = path.relative_to(root).parts[0].removesuffix(".tsv")  # <rule>.tsv or <rule>/<job>.tsv
        per_rule[rule].append(pl.read_csv(path, separator="\t").row(0, named=True))
    if not per_rule:
        raise SystemExit(f"no benchmark files under {root}: run the workflow first")
    print(f"{'rule':<22}{'jobs':>5}{'wall s':>9}{'max s':>8}{'cpu s':>9}{'peak MB':>9}")
    total_wall = total_cpu = 0.0
    for rule, rows in sorted(per_rule.items(), key=lambda kv: -sum(r["s"] for r in kv[1])):
        wall = sum(r["s"] for r in rows)
        cpu = sum(float(r["cpu_time"] or 0) for r in rows)
        rss = max(float(r["max_rss"] or 0) for r in rows)
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"{rule:<22}{len(rows):>5}{wall:>9.1f}{max(r['s'] for r in rows):>8.1f}{cpu:>9.1f}{rss:>9.0f}")
    print(f"{'all jobs':<22}{sum(map(len, per_rule.values())):>5}{total_wall:>9.1f}{'':>8}{total_cpu:>9.1f}")


if __name__ == "__main__":
    main()
