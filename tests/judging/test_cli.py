"""`archive-encoders judge` and `archive-encoders judgments export`: errors are one line and exit 2."""

from __future__ import annotations

import pytest
from support.judging_helpers import JUDGED, write_pool

from archive_encoders.cli import main
from archive_encoders.judging.pool import pool_queries, read_pool
from archive_encoders.judging.store import JudgmentStore


def test_export_from_the_command_line(tmp_path, capsys):
    pool, corpus = write_pool(tmp_path)
    store = JudgmentStore(tmp_path / "j.sqlite")
    store.add_queries(pool_queries(read_pool(pool)).items())
    for row in JUDGED:
        store.judge(*row)
    args = ["judgments", "export", "--db", str(store.path), "--pool", str(pool), "--corpus", str(corpus)]
    assert main([*args, "--out", str(tmp_path / "out"), "--min-queries", "2"]) == 0
    assert (tmp_path / "out" / "qrels" / "test.tsv").is_file()
    assert "3 queries, 8 graded passages from 3 annotator(s)" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "out2")]) == 2  # the default asks for 10 queries
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archive-encoders judgments export: ")
    assert "lower --min-queries" in err and not (tmp_path / "out2").exists()


@pytest.mark.parametrize("command", ["judge", "export"])
def test_a_bad_pool_is_one_line_and_exit_2(tmp_path, capsys, command):
    (tmp_path / "pool.parquet").write_text("not parquet")
    args = ["--pool", str(tmp_path / "pool.parquet"), "--db", str(tmp_path / "j.sqlite")]
    if command == "judge":
        argv = ["judge", *args]
    else:
        JudgmentStore(tmp_path / "j.sqlite")
        argv = [
            "judgments",
            "export",
            *args,
            "--corpus",
            str(tmp_path / "c.parquet"),
            "--out",
            str(tmp_path / "o"),
        ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pool.parquet: not a Parquet file" in err
