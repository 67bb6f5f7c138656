"""The download stage at archive scale: scrape-API cursor paging and the download budget.

Against tests/support/fake_archive.py: small `page_size`s make a handful of items span several pages, and
budgets of a few kB stand in for `archive.max_total_gb` in GB (1 kB = 1e-6 GB).
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest
from support.fake_archive import FAST_RUNTIME, FakeArchive, remote_settings, write_ia_folder

from archive_encoders import archive
from archive_encoders.archive import BUDGET_REACHED, ArchiveError
from archive_encoders.archive.remote import RemoteSource
from archive_encoders.archive.session import Runtime

ITEMS = "results/corpus/items.parquet"
DOWNLOADS = "results/corpus/downloads.parquet"
CACHE = "resources/archive"
KB = 1e-6  # one kB, in max_total_gb's unit


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def text(identifier: str, size: int = 3000) -> bytes:
    line = f"{identifier}: a page of the scan.\n".encode()
    return (line * (size // len(line) + 1))[:size]


def cursors(fake) -> list[str | None]:
    return [(r.query.get("cursor") or [None])[0] for r in fake.seen("search")]


# --- paging ---


def test_search_reads_every_cursor_page_once_and_drops_duplicates(caplog):
    with FakeArchive(page_size=5) as fake:
        for i in range(23):
            fake.add_item(f"item{i:02d}", {f"item{i:02d}.txt": text(f"item{i:02d}")})
        fake.extra_results += ["item03", "item17"]  # repeats that arrive on the last page
        items = archive.search(remote_settings(fake, max_items=1000), ITEMS, runtime=FAST_RUNTIME)
        # 25 results in pages of 5: five requests, each with the cursor the previous answer gave
        assert cursors(fake) == [None, "5", "10", "15", "20"]
        assert {r.query["count"][0] for r in fake.seen("search")} == {"1000"}
        assert items["identifier"].to_list() == [f"item{i:02d}" for i in range(23)]
        assert fake.count("metadata") == 23  # each unique identifier looked up once
        assert sum("more than once" in r.getMessage() for r in caplog.records) == 2


def test_search_stops_paging_at_max_items():
    with FakeArchive(page_size=5) as fake:
        for i in range(23):
            fake.add_item(f"item{i:02d}", {f"item{i:02d}.txt": text(f"item{i:02d}")})
        fake.extra_results += ["item00"]
        items = archive.search(remote_settings(fake, max_items=12), ITEMS, runtime=FAST_RUNTIME)
        assert items["identifier"].to_list() == [f"item{i:02d}" for i in range(12)]
        assert cursors(fake) == [None, "5", "10"]  # the 12th identifier is on page 3: no page 4
        assert {r.query["count"][0] for r in fake.seen("search")} == {"100"}  # the API's minimum
        assert fake.count("metadata") == 12


def test_search_of_more_than_10000_results_pages_through_the_cursor():
    with FakeArchive() as fake:  # no page_size: pages are as large as the API allows
        fake.extra_results += [f"x{i:05d}" for i in range(25_000)]
        fake.extra_results.insert(10_000, "x09999")  # a repeat right across the first page boundary
        source = archive.open_source(remote_settings(fake), Runtime.from_mapping(FAST_RUNTIME))
        assert isinstance(source, RemoteSource)
        found = source.identifiers("*:*", None, max_items=30_000)
        assert cursors(fake) == [None, "10000", "20000"]
        assert {r.query["count"][0] for r in fake.seen("search")} == {"10000"}
        assert found == [f"x{i:05d}" for i in range(25_000)]  # every page read, the repeat dropped

        fake.reset_log()
        assert source.identifiers("*:*", None, max_items=15_000) == [f"x{i:05d}" for i in range(15_000)]
        assert cursors(fake) == [None, "10000"]


def test_a_failed_page_is_retried_alone_not_the_whole_search():
    with FakeArchive(page_size=4) as fake:
        for i in range(10):
            fake.add_item(f"item{i}", {f"item{i}.txt": text(f"item{i}")})
        fake.add_fault("search", "malformed")  # hits page 1
        items = archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
        assert items.height == 10 and cursors(fake) == [None, None, "4", "8"]
        fake.reset_log()
        fake.add_fault("search", "reset", cursor="4")  # page 2 breaks once: only page 2 is asked again
        items = archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
        assert items.height == 10 and cursors(fake) == [None, "4", "4", "8"]
        assert [r.response for r in fake.seen("search")] == [200, "reset", 200, 200]


def test_retries_zero_means_one_request_and_no_hidden_retries_underneath():
    with FakeArchive() as fake:
        fake.add_item("a", {"a.txt": text("a")})
        fake.add_fault("search", "status", times=None, status=503)
        with pytest.raises(ArchiveError, match="kept answering with errors after 0 retries"):
            archive.search(remote_settings(fake), ITEMS, runtime={**FAST_RUNTIME, "retries": 0})
        assert fake.count("search") == 1


# --- the download budget ---


def run(fake, max_total_gb, runtime=None, **settings) -> dict[str, dict]:
    runtime = {**FAST_RUNTIME, **(runtime or {})}
    archive.search(remote_settings(fake, **settings), ITEMS, runtime=runtime)
    frame = archive.download(
        ITEMS, DOWNLOADS, CACHE, 1, {"base_url": fake.url}, runtime, max_total_gb=max_total_gb
    )
    assert pl.read_parquet(DOWNLOADS).equals(frame)
    return {row["identifier"]: row for row in frame.to_dicts()}


def cache_files() -> list[str]:
    return sorted(p.relative_to(CACHE).as_posix() for p in Path(CACHE).rglob("*") if p.is_file())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_budget_stops_at_the_limit_and_leaves_no_partial(concurrency, caplog):
    with FakeArchive() as fake:
        for name in "abcde":
            fake.add_item(name, {f"{name}.txt": text(name, 3000)})
        rows = run(fake, 7 * KB, {"concurrency": concurrency})  # room for two 3,000-byte files
        assert [(r["status"], r["reason"]) for r in rows.values()] == [
            ("ok", None),
            ("ok", None),
            ("skipped", BUDGET_REACHED),
            ("skipped", BUDGET_REACHED),
            ("skipped", BUDGET_REACHED),
        ]
        assert sum(r["bytes"] or 0 for r in rows.values()) == 6000 <= 7000
        assert sorted(r.identifier for r in fake.seen("data")) == ["a", "b"]  # c, d, e never requested
        assert cache_files() == ["a/a.txt", "b/b.txt"]  # no .part, no partial under a final name
        assert "download budget reached" in caplog.text and "item 3 and every later one" in caplog.text


def test_budget_counts_cached_files_too():
    with FakeArchive() as fake:
        for name, coll in (("a", "first"), ("b", "second"), ("c", "second")):
            fake.add_item(name, {f"{name}.txt": text(name, 3000)}, {"collection": coll})
        run(fake, None, query="collection:first")  # a is cached now
        fake.reset_log()
        rows = run(fake, 7 * KB, query="collection:first OR collection:second")
        assert [rows[n]["status"] for n in "abc"] == ["ok", "ok", "skipped"]
        assert [r.identifier for r in fake.seen("data")] == ["b"]  # a came from the cache and counted


def test_a_failed_file_gives_its_bytes_back():
    with FakeArchive() as fake:
        for name in "abcd":
            bad_md5 = {f"{name}.txt": {"md5": "0" * 32}} if name == "b" else None
            fake.add_item(name, {f"{name}.txt": text(name, 3000)}, file_meta=bad_md5)
        rows = run(fake, 7 * KB, {"concurrency": 4})
        assert [rows[n]["status"] for n in "abcd"] == ["ok", "skipped", "ok", "skipped"]
        assert rows["b"]["reason"].startswith("md5 mismatch") and rows["d"]["reason"] == BUDGET_REACHED


def test_file_of_unknown_size_is_cut_off_at_the_budget_and_discarded():
    with FakeArchive() as fake:
        fake.add_item("a", {"a.txt": text("a", 3000)})
        fake.add_item("u", {"u.txt": text("u", 200_000)}, file_meta={"u.txt": {"size": None}})
        fake.add_item("v", {"v.txt": text("v", 100)})  # would fit, but the budget already stopped the run
        fake.add_fault("data", "no_length", identifier="u")  # no Content-Length either: found out streaming
        rows = run(fake, 100 * KB, {"concurrency": 4})
        assert rows["a"]["status"] == "ok" and rows["u"]["reason"] == BUDGET_REACHED
        assert rows["v"]["reason"] == BUDGET_REACHED and fake.count("data", "v") == 0
        assert fake.count("data", "u") == 1
        assert cache_files() == ["a/a.txt"]  # the cut-off partial is gone, .part included

        # with room for it, the same unknown-size file is streamed whole
        rows = run(fake, 1000 * KB)
        assert [rows[n]["status"] for n in "auv"] == ["ok", "ok", "ok"]


def test_unknown_size_is_refused_by_a_content_length_over_the_budget():
    with FakeArchive() as fake:
        fake.add_item("a", {"a.txt": text("a", 3000)})
        fake.add_item("u", {"u.txt": text("u", 50_000)}, file_meta={"u.txt": {"size": None}})
        rows = run(fake, 10 * KB)
        assert rows["u"]["reason"] == BUDGET_REACHED and cache_files() == ["a/a.txt"]


def test_budget_too_small_for_any_file_fails_clearly():
    with FakeArchive() as fake:
        fake.add_item("a", {"a.txt": text("a", 3000)})
        with pytest.raises(ArchiveError, match="no file could be downloaded"):
            run(fake, 1 * KB)
        assert fake.count("data") == 0 and not Path(DOWNLOADS).exists()


def test_budget_applies_to_a_local_source(caplog):
    caplog.set_level(logging.INFO)
    write_ia_folder(Path("mirror/archive"), {n: {f"{n}.txt": text(n, 3000)} for n in "abc"})
    settings = {"source": "local", "local_dir": "mirror/archive"}
    archive.search(settings, ITEMS)
    frame = archive.download(ITEMS, DOWNLOADS, CACHE, 1, settings, max_total_gb=6 * KB)
    assert frame["status"].to_list() == ["ok", "ok", "skipped"]
    assert frame["reason"].to_list()[2] == BUDGET_REACHED
    assert "1 of them because the download budget was reached" in caplog.text
