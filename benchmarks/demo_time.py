"""Where the demo's time goes: every job's Snakemake benchmark file, summed per rule.

    time make demo && .venv/bin/python benchmarks/demo_time.py [--workdir .]

Each rule writes logs/<stage>/<name>.benchmark.tsv (wall seconds, CPU seconds, peak RSS). Prints per rule:
jobs, wall seconds summed and the largest job, CPU seconds summed (user + system; above wall means the
job used more than one core), and peak RSS; then the sums. The sum of wall seconds over the workflow's
elapsed time is how many jobs ran side by side on average.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import polars as pl

RULE_OF = {  # benchmark file -> rule, by its place under logs/ (paths.py's log layout)
    "corpus/clean_shard": "clean_shard",
    "corpus/chunk_shard": "chunk_shard",
    "train/teacher_embeddings": "teacher_embeddings",
    "train/teacher_scores": "teacher_scores",
}
SUFFIX_RULE = {
    ("export", ".openvino"): "export_openvino",
    ("export", ".static"): "export_static",
    ("export", ""): "export_onnx",
    ("train", ""): "train_model",
    ("evaluate", ""): "evaluate_model",
    ("latency", ""): "measure_latency",
}


def rule_of(path: Path, logs: Path) -> str:
    relative = path.relative_to(logs)
    parent = str(relative.parent)
    name = relative.name.removesuffix(".benchmark.tsv")
    if parent in RULE_OF:
        return RULE_OF[parent]
    stage = relative.parts[0]
    if len(relative.parts) == 2:  # logs/<stage>/<rule>.benchmark.tsv
        return {"bm25": "evaluate_lexical"}.get(name, name)
    suffix = "." + name.split(".", 1)[1] if "." in name else ""
    return SUFFIX_RULE.get((stage, suffix), f"{stage}{suffix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    args = parser.parse_args()
    logs = args.workdir / "logs"
    per_rule: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(logs.rglob("*.benchmark.tsv")):
        row = pl.read_csv(path, separator="\t").row(0, named=True)
        per_rule[rule_of(path, logs)].append(row)
    if not per_rule:
        raise SystemExit(f"no benchmark files under {logs}: run the workflow first")
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
