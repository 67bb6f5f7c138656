"""Fake a finished run: create every output of the workflow's DAG as a placeholder, then `snakemake --touch`.

`--touch` records the same metadata as a real run (params, input set, software env) without running a
job, so dry-runs on the result show exactly what Snakemake would rerun after a change. It only marks
outputs that exist, hence the placeholders first: a file, or a folder holding one file for `directory()`
outputs. Used by tests/workflow/test_incremental.py and benchmarks/dag_timing.py.

    python tests/support/fake_outputs.py --configfile CONFIG --directory WORKDIR [TARGET ...]

Listing the DAG's outputs with their `directory()` flag needs Snakemake's Python API, including two
private calls (`_prepare_dag`, `_build_dag`, the same ones `snakemake --summary` makes); snakemake is
pinned (9.27.1), and a change there fails here loudly rather than faking the wrong files.

The jobs after a checkpoint exist only once its output does: assign_shards' folder is faked with
FAKE_SHARDS shard lists in it, build_report's recommendation.json with a real recommendation (the
config's first model x method, served as its static variant), and the listing, placeholders and touch
are repeated until the DAG has no job left to fake.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
FAKE_SHARDS = 2  # shard lists faked into assign_shards' folder, so the per-shard jobs exist
CHECKPOINT_ROUNDS = 4  # listing rounds at most: one per checkpoint on a path (assign_shards, build_report)


FAKE_VARIANT = "static"  # the variant the faked recommendation serves


def checkpoint_contents() -> dict[str, list[str]]:
    """{checkpoint folder: files to fake in it}: what the workflow's input functions read from it."""
    from archive_encoders import paths
    from archive_encoders.corpus.shards import shard_name

    shards = [paths.SHARD_ITEMS.format(shard=shard_name(i)) for i in range(FAKE_SHARDS)]
    return {paths.SHARD_ITEMS_DIR: shards}


def fake_recommendation(configfile: Path) -> str:
    """recommendation.json's text for the config's first model x method: what build_index's input
    function reads to plan the shard encodings."""
    import json

    import yaml

    from archive_encoders import config as aec
    from archive_encoders import paths

    config = yaml.safe_load(configfile.read_text())
    aec.validate(config)
    model, method = aec.matrix(config)[0]
    row = {"model": model, "method": method, "variant": FAKE_VARIANT}
    artefact = paths.ONNX.format(model=model, method=method)
    return json.dumps({**row, "retriever": "dense", "index": row, "artefact": artefact}) + "\n"


def dag_outputs(
    snakefile: Path, configfile: Path, workdir: Path, targets: list[str], forceall: bool = True
) -> dict[str, bool]:
    """{output path (relative to workdir): is a directory} for every job of the DAG of `targets`. With
    `forceall`, the jobs after a checkpoint are not listed (the checkpoint would rerun first)."""
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
        workflow._prepare_dag(forceall=forceall, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        for job in workflow.dag.jobs:
            for f in job.output:
                outputs[str(f)] = is_flagged(f, "directory")
    return outputs


def create_placeholders(workdir: Path, outputs: dict[str, bool], configfile: Path) -> int:
    """Create the missing outputs; returns how many were created."""
    from archive_encoders import paths

    created = 0
    contents = checkpoint_contents()
    for rel, is_dir in sorted(outputs.items()):
        path = workdir / rel
        if path.exists():
            continue
        if is_dir:
            path.mkdir(parents=True)
            for inner in contents.get(rel, [f"{rel}/placeholder.txt"]):
                (workdir / inner).write_text("fake output\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fake = fake_recommendation(configfile) if rel == paths.RECOMMENDATION else "fake output\n"
            path.write_text(fake)
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
    # Each round fakes up to the next checkpoint (its touch then stops at the jobs after it, whose outputs
    # do not exist yet); the last lists the DAG with every checkpoint done, and its touch must succeed.
    created = 0
    for _ in range(CHECKPOINT_ROUNDS):
        listed = _listed_outputs(configfile, workdir, targets, snakefile, created == 0)
        created += (new := create_placeholders(workdir, listed, configfile))
        _touch(configfile, workdir, targets, snakefile, extra_args, check=False)
        if not new and created:
            break
    _touch(configfile, workdir, targets, snakefile, extra_args)
    return created


def _listed_outputs(configfile, workdir, targets, snakefile, forceall: bool) -> dict[str, bool]:
    cmd = [sys.executable, __file__, "--snakefile", str(snakefile), "--configfile", str(configfile)]
    cmd += ["--directory", str(workdir), "--list", *(() if forceall else ("--no-forceall",)), *targets]
    listing = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise RuntimeError(f"listing the DAG's outputs failed:\n{listing.stdout}\n{listing.stderr}")
    outputs = {}
    for line in listing.stdout.splitlines():
        kind, _, rel = line.partition("\t")
        if kind in ("D", "F"):
            outputs[rel] = kind == "D"
    if not outputs:
        raise RuntimeError(f"the DAG of {targets} has no outputs:\n{listing.stderr}")
    return outputs


def _touch(configfile, workdir, targets, snakefile, extra_args, check: bool = True) -> None:
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
    if check and touch.returncode != 0:
        raise RuntimeError(f"snakemake --touch failed:\n{touch.stdout[-4000:]}\n{touch.stderr[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    parser.add_argument("--configfile", type=Path, required=True)
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--list", action="store_true", help="only print 'D|F<TAB>path' per output")
    parser.add_argument("--no-forceall", action="store_true", help="list without forcing every job")
    parser.add_argument("targets", nargs="*", default=["all"])
    args = parser.parse_args()
    configfile, workdir = args.configfile.resolve(), args.directory.resolve()
    if args.list:
        outputs = dag_outputs(
            args.snakefile.resolve(), configfile, workdir, args.targets, not args.no_forceall
        )
        for rel, is_dir in sorted(outputs.items()):
            print(f"{'D' if is_dir else 'F'}\t{rel}")
    else:
        print(fake_run(configfile, workdir, args.targets, args.snakefile.resolve()), "outputs faked")


if __name__ == "__main__":
    main()
