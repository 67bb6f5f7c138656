"""Fake a finished run: create every output of the workflow's DAG as a placeholder, then `snakemake --touch`.

`--touch` records the same metadata as a real run (params, input set, software env) without running a
job, so dry-runs on the result show exactly what Snakemake would rerun after a change. It only marks
outputs that exist, hence the placeholders first: a file, or a folder holding one file for `directory()`
outputs. Used by tests/test_incremental.py and benchmarks/dag_timing.py.

    python tests/fake_outputs.py --configfile CONFIG --directory WORKDIR [TARGET ...]

Listing the DAG's outputs with their `directory()` flag needs Snakemake's Python API, including two
private calls (`_prepare_dag`, `_build_dag`, the same ones `snakemake --summary` makes); snakemake is
pinned (9.27.1), and a change there fails here loudly rather than faking the wrong files.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def dag_outputs(snakefile: Path, configfile: Path, workdir: Path, targets: list[str]) -> dict[str, bool]:
    """{output path (relative to workdir): is a directory} for every job of the DAG of `targets`."""
    from snakemake.api import SnakemakeApi
    from snakemake.io import is_flagged
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    outputs: dict[str, bool] = {}
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile], replace_workflow_config=True),
            snakefile=snakefile,
            workdir=workdir,
        )
        workflow_api.dag(DAGSettings(targets=set(targets)))  # sets the workflow's DAG settings
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        for job in workflow.dag.jobs:
            for f in job.output:
                outputs[str(f)] = is_flagged(f, "directory")
    return outputs


def create_placeholders(workdir: Path, outputs: dict[str, bool]) -> int:
    """Create the missing outputs; returns how many were created."""
    created = 0
    for rel, is_dir in sorted(outputs.items()):
        path = workdir / rel
        if path.exists():
            continue
        if is_dir:
            path.mkdir(parents=True)
            (path / "placeholder.txt").write_text("fake output\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("fake output\n")
        created += 1
    return created


def fake_run(
    configfile: Path,
    workdir: Path,
    targets: list[str] | tuple[str, ...] = ("all",),
    snakefile: Path = REPO / "Snakefile",
    extra_args: tuple[str, ...] = (),
) -> int:
    """Make `workdir` look like a finished run of `targets`; returns the number of placeholders created."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--snakefile", str(snakefile), "--configfile", str(configfile)]
    listing = subprocess.run(
        [*cmd, "--directory", str(workdir), "--list", *targets], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        raise RuntimeError(f"listing the DAG's outputs failed:\n{listing.stdout}\n{listing.stderr}")
    outputs = {}
    for line in listing.stdout.splitlines():
        kind, _, rel = line.partition("\t")
        if kind in ("D", "F"):
            outputs[rel] = kind == "D"
    if not outputs:
        raise RuntimeError(f"the DAG of {targets} has no outputs:\n{listing.stderr}")
    created = create_placeholders(workdir, outputs)
    touch = subprocess.run(
        [
            str(SNAKEMAKE),
            *targets,  # first: --configfile and --quiet would swallow them
            *("--snakefile", str(snakefile), "--directory", str(workdir), "--cores", "1"),
            *("--touch", "--forceall", *extra_args, "--configfile", str(configfile), "--quiet"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if touch.returncode != 0:
        raise RuntimeError(f"snakemake --touch failed:\n{touch.stdout[-4000:]}\n{touch.stderr[-4000:]}")
    return created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    parser.add_argument("--configfile", type=Path, required=True)
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--list", action="store_true", help="only print 'D|F<TAB>path' per output")
    parser.add_argument("targets", nargs="*", default=["all"])
    args = parser.parse_args()
    configfile, workdir = args.configfile.resolve(), args.directory.resolve()
    if args.list:
        outputs = dag_outputs(args.snakefile.resolve(), configfile, workdir, args.targets)
        for rel, is_dir in sorted(outputs.items()):
            print(f"{'D' if is_dir else 'F'}\t{rel}")
    else:
        print(fake_run(configfile, workdir, args.targets, args.snakefile.resolve()), "outputs faked")


if __name__ == "__main__":
    main()
