"""The judging target's queries: a team's file, the queries typed on the judging page (judging.db), or
both. A typed query reruns what pools it; a grade given on the page reruns nothing."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_targets import CONFIG, planned_jobs

from archive_encoders.judging.store import JudgmentStore

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
QUERIES = "results/judging/queries.parquet"

pytestmark = pytest.mark.e2e


def snakemake(tmp_path: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, allow_unicode=True))
    cmd = [str(SNAKEMAKE), *args, "--snakefile", str(REPO / "Snakefile"), "--cores", "1"]
    cmd += ["--directory", str(tmp_path / "work"), "--configfile", str(configfile)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def with_judging(**judging) -> dict:
    config = copy.deepcopy(CONFIG)
    config["judging"] = judging
    return config


def test_typed_queries_alone_plan_the_judging_target(tmp_path):
    db = tmp_path / "judgments.sqlite"
    JudgmentStore(db).add_queries([("j-1", "пожар в Москве")], source="page")
    jobs = planned_jobs(tmp_path, "judging", config=with_judging(db=str(db)))
    assert jobs["judging_queries"] == 1 and jobs["pool_judging"] == 1


def test_the_judging_target_without_any_query_says_what_to_set(tmp_path):
    result = snakemake(tmp_path, with_judging(db=str(tmp_path / "none-yet.sqlite")), "judging", "-n")
    assert result.returncode != 0
    assert "judging.queries: set it to a text file" in result.stdout + result.stderr


def test_a_typed_query_reruns_the_team_queries_and_a_grade_does_not(tmp_path):
    queries, db = tmp_path / "queries.txt", tmp_path / "judgments.sqlite"
    queries.write_text("пожар в Москве\n", encoding="utf-8")
    config = with_judging(queries=str(queries), db=str(db))
    done = snakemake(tmp_path, config, QUERIES)
    assert done.returncode == 0, done.stderr
    store = JudgmentStore(db)
    store.add_queries([("j-x", "пожар в Москве")], source="file")
    store.judge("j-x", "c1", "anna", 2)  # a grade: nothing to pool again
    assert "Nothing to be done" in snakemake(tmp_path, config, QUERIES, "-n").stdout

    store.add_queries([("j-y", "наводнение 1824 года")], source="page")
    plan = snakemake(tmp_path, config, QUERIES, "-n")
    assert "judging_queries" in plan.stdout and "Params have changed" in plan.stdout
    assert snakemake(tmp_path, config, QUERIES).returncode == 0
    import polars as pl

    texts = pl.read_parquet(tmp_path / "work" / QUERIES)["text"].to_list()
    assert texts == ["пожар в Москве", "наводнение 1824 года"]
