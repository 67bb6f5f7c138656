"""Fault suite for the download stage (issue 6, items 1-14; issue 19, 15-21), against the fake archive.org.

Each test switches one fault on, runs the real search + download through the `internetarchive` client,
and asserts what happened: retried and succeeded, skipped and logged with the item id and reason, or a
clear failure. Every test also checks that no corrupt or partial file sits under a final name.

The observed outcome of each test is collected into a table printed at the end of the pytest run
(set FAULT_TABLE=path to also write it as Markdown).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import time
from pathlib import Path

import polars as pl
import pytest
from support.fake_archive import FAST_RUNTIME, FakeArchive, remote_settings

from archive_encoders import archive
from archive_encoders.archive import ArchiveError
from archive_encoders.archive.files import file_md5

ITEMS = "results/corpus/items.parquet"
DOWNLOADS = "results/corpus/downloads.parquet"
CACHE = "resources/archive"

# --- the table ---

ROWS: list[tuple[str, str, str]] = []


class _FaultTable:
    """A plugin registered by this module: prints the rows in pytest's terminal summary."""

    def pytest_terminal_summary(self, terminalreporter):
        if not ROWS:
            return
        lines = ["| fault | expected | observed |", "|---|---|---|"]
        lines += [f"| {f} | {e} | {o} |" for f, e, o in sorted(ROWS, key=lambda r: _fault_key(r[0]))]
        terminalreporter.write_sep("=", "download fault table")
        for line in lines:
            terminalreporter.write_line(line)
        if os.environ.get("FAULT_TABLE"):
            Path(os.environ["FAULT_TABLE"]).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fault_key(name: str):
    number = re.match(r"(\d+)([a-z]?)", name)
    return (int(number.group(1)), number.group(2)) if number else (99, name)


@pytest.fixture(scope="module", autouse=True)
def fault_table(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("download-fault-table"):
        manager.register(_FaultTable(), "download-fault-table")


def record(fault: str, expected: str, observed: str) -> None:
    ROWS.append((fault, expected, observed))


# --- helpers ---


@pytest.fixture
def fake():
    with FakeArchive() as server:
        yield server


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def text(identifier: str, size: int = 3000) -> bytes:
    line = f"{identifier}: a line of OCR text.\n".encode()
    return (line * (size // len(line) + 1))[:size]


def search(fake, runtime=None, **settings) -> pl.DataFrame:
    return archive.search(
        remote_settings(fake, **settings), ITEMS, runtime={**FAST_RUNTIME, **(runtime or {})}
    )


def download(fake, max_file_mb=1.0, runtime=None) -> dict[str, dict]:
    frame = archive.download(
        ITEMS, DOWNLOADS, CACHE, max_file_mb, {"base_url": fake.url}, {**FAST_RUNTIME, **(runtime or {})}
    )
    return {row["identifier"]: row for row in frame.to_dicts()}


def assert_final_files_are_whole(rows: dict[str, dict] | None = None) -> None:
    """Every file under a final name in the cache is a verified download listed as ok; no temporaries."""
    listed = {r["path"]: r for r in (rows or {}).values() if r["status"] == "ok"}
    for path in Path(CACHE).rglob("*") if Path(CACHE).exists() else []:
        if path.is_dir() or path.name.endswith((".part", ".ia.json")):  # partials, recorded ETags
            continue
        rel = path.as_posix()
        assert rel in listed, f"{rel} is under a final name but was not recorded as ok"
        assert file_md5(path) == listed[rel]["md5"]
    for row in listed.values():
        assert Path(row["path"]).is_file()
    assert not [p for p in Path("results").rglob("*.tmp")], "a temporary output was left behind"


def skipped(rows, identifier) -> str:
    row = rows[identifier]
    assert row["status"] == "skipped" and row["path"] is None
    return row["reason"]


def logged(caplog, identifier: str, reason_part: str) -> bool:
    return any(identifier in r.getMessage() and reason_part in r.getMessage() for r in caplog.records)


def skip_reason(caplog, identifier: str) -> str:
    """The reason logged for skipping `identifier` ("skip item 'x': <reason>")."""
    prefix = f"skip item {identifier!r}: "
    found = [r.getMessage()[len(prefix) :] for r in caplog.records if r.getMessage().startswith(prefix)]
    assert found, f"no skip logged for {identifier!r}"
    return found[-1]


def message(err: pytest.ExceptionInfo, limit: int = 90) -> str:
    """The error's message without the fake's URL (its port changes every run), shortened."""
    text = re.sub(r"^search at \S+ ", "search ", str(err.value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def requests_to(fake, route, identifier=None) -> str:
    return ", ".join(str(r.response) for r in fake.seen(route, identifier))


# --- 1. a burst of 500/503, then recovery ---


def test_fault_01_burst_of_5xx_then_recovery(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("b", {"b_djvu.txt": text("b", 80_000)})
    fake.add_fault("search", "status", times=2, status=503)
    fake.add_fault("metadata", "status", times=2, status=500, identifier="a")
    fake.add_fault("data", "status", times=2, status=503, identifier="b")
    search(fake, runtime={"retries": 3})
    rows = download(fake, runtime={"retries": 3})
    assert [r["status"] for r in rows.values()] == ["ok", "ok"]
    assert fake.count("search") == 3 and fake.count("metadata", "a") == 3 and fake.count("data", "b") == 3
    assert Path(rows["b"]["path"]).read_bytes() == text("b", 80_000)
    assert "HTTP 503 for /services/search/v1/scrape" in caplog.text
    assert_final_files_are_whole(rows)
    record(
        "1 burst of 500/503",
        "retried with backoff, then ok",
        f"search [{requests_to(fake, 'search')}], metadata a [{requests_to(fake, 'metadata', 'a')}], "
        f"data b [{requests_to(fake, 'data', 'b')}]; both items ok, md5 verified",
    )


def test_fault_01b_5xx_that_never_ends(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("b", {"b.txt": text("b")})
    fake.add_fault("data", "status", times=None, status=503, identifier="b")
    search(fake)
    rows = download(fake)
    reason = skipped(rows, "b")
    assert "HTTP error after 2 retries" in reason and "503" in reason
    assert rows["a"]["status"] == "ok" and fake.count("data", "b") == 3
    assert logged(caplog, "'b'", "HTTP error after 2 retries")
    assert not list(Path(CACHE).rglob("b*"))
    assert_final_files_are_whole(rows)

    fake.add_fault("search", "status", times=None, status=500)
    with pytest.raises(ArchiveError, match="kept answering with errors after 2 retries") as err:
        search(fake)
    record(
        "1b 500/503 that never end",
        "item skipped with reason; search fails clearly",
        f"b skipped: '{reason}'; search: ArchiveError '{message(err)}'",
    )


# --- 2. 429 with Retry-After ---


def test_fault_02_429_with_retry_after(fake):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_fault("search", "status", status=429, retry_after="1")
    fake.add_fault("data", "status", status=429, retry_after="1", identifier="a")
    search(fake)  # backoff_s is 0.01: only Retry-After explains a one-second wait
    rows = download(fake)
    assert rows["a"]["status"] == "ok"
    gaps = {}
    for route in ("search", "data"):
        first, second = fake.seen(route)
        assert (first.response, second.response) == ("status", 200)
        gaps[route] = second.time - first.time
        assert gaps[route] >= 0.95, f"{route} retried after {gaps[route]:.2f} s, before Retry-After"
    assert_final_files_are_whole(rows)
    record(
        "2 429 + Retry-After: 1",
        "waits Retry-After, then ok",
        f"search retried after {gaps['search']:.2f} s, data after {gaps['data']:.2f} s "
        f"(backoff_s=0.01); item ok",
    )


# --- 3. connection reset mid-body ---


def test_fault_03_connection_reset_mid_body(fake, caplog):
    data = text("a", 300_000)
    fake.add_item("a", {"a_djvu.txt": data})
    fake.add_item("b", {"b.txt": text("b")})
    fake.add_fault("data", "reset", identifier="a")
    fake.add_fault("metadata", "reset", identifier="b")
    search(fake)
    rows = download(fake)
    assert [r["status"] for r in rows.values()] == ["ok", "ok"]
    ranges = [r.headers.get("Range") for r in fake.seen("data", "a")]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert Path(rows["a"]["path"]).read_bytes() == data
    assert fake.count("metadata", "b") == 2
    assert_final_files_are_whole(rows)
    record(
        "3 connection reset mid-body",
        "resumed with Range, md5 verified",
        f"data a [{requests_to(fake, 'data', 'a')}], resumed with '{ranges[1]}'; "
        f"metadata b reset then re-fetched; both ok",
    )


# --- 4. body shorter than Content-Length ---


def test_fault_04_body_shorter_than_content_length(fake):
    data = text("a", 150_000)
    fake.add_item("a", {"a.txt": data})
    fake.add_item("b", {"b.txt": text("b")})
    fake.add_fault("data", "short", identifier="a")
    fake.add_fault("metadata", "short", identifier="b")
    search(fake)
    rows = download(fake)
    assert [r["status"] for r in rows.values()] == ["ok", "ok"]
    ranges = [r.headers.get("Range") for r in fake.seen("data", "a")]
    # resumed from what reached the .part: at most the two thirds the server sent
    start = int(re.fullmatch(r"bytes=(\d+)-", ranges[1]).group(1))
    assert ranges[0] is None and 0 < start <= len(data) * 2 // 3
    assert Path(rows["a"]["path"]).read_bytes() == data
    assert_final_files_are_whole(rows)
    record(
        "4 body shorter than Content-Length",
        "resumed with Range, md5 verified",
        f"data a [{requests_to(fake, 'data', 'a')}], resumed with '{ranges[1]}'; "
        f"metadata b re-fetched; both ok",
    )


# --- 5. md5 does not match the metadata ---


def test_fault_05_md5_mismatch(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("bad", {"bad.txt": text("bad")}, file_meta={"bad.txt": {"md5": "0" * 32}})
    search(fake)
    rows = download(fake)
    reason = skipped(rows, "bad")
    assert reason.startswith("md5 mismatch: metadata says 00000000")
    assert hashlib.md5(text("bad")).hexdigest() in reason
    assert fake.count("data", "bad") == 1  # a whole fresh download that disagrees is not repeated
    assert not list(Path(CACHE).rglob("bad.txt*"))
    assert logged(caplog, "'bad'", "md5 mismatch")
    assert_final_files_are_whole(rows)
    record(
        "5 md5 not matching metadata", "skipped + logged, nothing kept", f"bad skipped: '{reason[:62]}...'"
    )


# --- 6. malformed JSON from search or metadata ---


def test_fault_06_malformed_json(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("b", {"b.txt": text("b")})
    fake.add_fault("search", "malformed")
    fake.add_fault("metadata", "malformed", identifier="a")
    fake.add_fault("metadata", "malformed", times=None, identifier="b")
    items = search(fake)
    assert items["identifier"].to_list() == ["a"]
    assert fake.count("search") == 2 and fake.count("metadata", "a") == 2 and fake.count("metadata", "b") == 3
    assert logged(caplog, "'b'", "malformed metadata JSON")
    rows = download(fake)
    assert rows["a"]["status"] == "ok"
    assert_final_files_are_whole(rows)

    fake.add_fault("search", "malformed", times=None)
    with pytest.raises(ArchiveError, match="failed after 3 attempts: malformed response") as err:
        search(fake)
    record(
        "6 malformed JSON (search, metadata)",
        "retried; item skipped if it stays bad; search fails clearly",
        f"search ok on retry; a ok on retry; b skipped after 3 tries; "
        f"always-bad search: ArchiveError '{message(err)}'",
    )


# --- 7. metadata {} ---


def test_fault_07_empty_metadata(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.set_metadata("dark", {})
    items = search(fake)
    assert items["identifier"].to_list() == ["a"]
    assert logged(caplog, "'dark'", "no metadata: the item is missing or dark")
    rows = download(fake)
    assert list(rows) == ["a"] and not Path(CACHE, "dark").exists()
    record("7 metadata {}", "skipped + logged", f"dark skipped: '{skip_reason(caplog, 'dark')}'")


# --- 8. no text file in the preferred formats ---


def test_fault_08_no_preferred_text_file(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("scans", {"scans.pdf": b"%PDF-1.4", "scans.epub": b"PK", "scans_meta.xml": b"<metadata/>"})
    items = search(fake)
    assert items["identifier"].to_list() == ["a"]
    assert logged(caplog, "'scans'", "no text file matching ['*_djvu.txt', '*.txt']")
    assert fake.count("download", "scans") == 0
    record(
        "8 no text file in preferred formats", "skipped + logged", f"scans: '{skip_reason(caplog, 'scans')}'"
    )


# --- 9. empty text file ---


def test_fault_09_empty_text_file(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("empty", {"empty.txt": b""})
    fake.add_item("unsized", {"unsized.txt": b""}, file_meta={"unsized.txt": {"size": None}})
    search(fake)
    rows = download(fake)
    assert skipped(rows, "empty") == "empty text file (0 bytes in metadata)"
    assert skipped(rows, "unsized") == "empty text file (0 bytes downloaded)"
    assert fake.count("data", "empty") == 0 and fake.count("data", "unsized") == 1
    assert logged(caplog, "'empty'", "empty text file")
    assert not list(Path(CACHE).rglob("*empty*")) and not list(Path(CACHE).rglob("*unsized*"))
    assert_final_files_are_whole(rows)
    record(
        "9 empty text file",
        "skipped + logged, nothing kept",
        f"empty: '{rows['empty']['reason']}', {fake.count('data', 'empty')} requests; "
        f"unsized: '{rows['unsized']['reason']}'; no file kept",
    )


# --- 10. cp1251 / invalid UTF-8 ---


def test_fault_10_cp1251_and_invalid_utf8_pass_through(fake, caplog):
    caplog.set_level(logging.INFO)
    cp1251 = "Война и мир. Том первый. Съѣздъ? нет: съезд.\n".replace("ѣ", "е").encode("cp1251") * 200
    junk = b"valid start \xff\xfe\x80\x81 broken \xc3\x28 bytes\n" * 100
    fake.add_item("cp", {"cp.txt": cp1251})
    fake.add_item("junk", {"junk_djvu.txt": junk})
    search(fake)
    rows = download(fake)
    assert Path(rows["cp"]["path"]).read_bytes() == cp1251
    assert Path(rows["junk"]["path"]).read_bytes() == junk
    assert rows["cp"]["md5"] == hashlib.md5(cp1251).hexdigest() and rows["cp"]["bytes"] == len(cp1251)
    assert logged(caplog, "cp", "not valid UTF-8") and logged(caplog, "junk", "not valid UTF-8")
    assert_final_files_are_whole(rows)
    record(
        "10 cp1251 / invalid UTF-8",
        "bytes kept intact, recorded ok (decoding: clean stage)",
        f"cp ok ({rows['cp']['bytes']} B), junk ok ({rows['junk']['bytes']} B), byte-identical; "
        "'not valid UTF-8' logged",
    )


# --- 11. ../, absolute paths, NUL bytes ---


def test_fault_11_hostile_names_write_nothing_outside(fake, workdir, caplog):
    outside = workdir / "outside"
    outside.mkdir()
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("dotdot", {"../../../escape_djvu.txt": b"pwned"})
    fake.add_item("absolute", {str(outside / "abs_djvu.txt"): b"pwned"})
    fake.add_item("nul", {"x\x00_djvu.txt": b"pwned"})
    fake.add_item("mixed", {"../mixed_djvu.txt": b"pwned", "mixed.txt": text("mixed")})
    fake.add_item("linked", {"linked.txt": text("linked")})
    fake.extra_results += ["../escape", "/etc", "nul\x00id", "back\\slash"]
    Path(CACHE).mkdir(parents=True)
    Path(CACHE, "linked").symlink_to(outside, target_is_directory=True)  # a planted symlink
    items = search(fake)
    assert items["identifier"].to_list() == ["a", "linked", "mixed"]
    assert items.filter(pl.col("identifier") == "mixed")["file_name"].item() == "mixed.txt"
    for identifier in ("'../escape'", "'/etc'", "'nul\\x00id'", "'back\\\\slash'"):
        assert logged(caplog, identifier, "unsafe identifier")
    for identifier in ("'dotdot'", "'absolute'", "'nul'"):
        assert logged(caplog, identifier, "unsafe file name")
    assert not [r for r in fake.requests if r.identifier in ("../escape", "/etc", "nul\x00id")]

    # items.parquet is an input too: a tampered row is refused again at download time
    tampered = pl.concat(
        [
            items,
            items.head(1).with_columns(
                pl.lit("../../outside").alias("identifier"), pl.lit("../x.txt").alias("file_name")
            ),
        ]
    )
    tampered.write_parquet(ITEMS)
    rows = download(fake)
    assert rows["a"]["status"] == "ok" and rows["mixed"]["status"] == "ok"
    assert "resolves outside" in skipped(rows, "linked")
    assert "unsafe path" in skipped(rows, "../../outside")
    assert list(outside.iterdir()) == []
    written = sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*") if p.is_file())
    assert written == [
        "resources/archive/a/a.txt",
        "resources/archive/mixed/mixed.txt",
        "results/corpus/downloads.parquet",
        "results/corpus/items.parquet",
    ]
    assert_final_files_are_whole(rows)
    record(
        "11 ../, absolute, NUL, backslash, symlink",
        "skipped + logged, nothing written outside",
        f"bad ids never requested ('../escape': '{skip_reason(caplog, '../escape')}'); "
        f"'dotdot': '{skip_reason(caplog, 'dotdot')[:60]}...'; 'mixed' took mixed.txt; "
        f"symlink: '{rows['linked']['reason'][:48]}...'; tampered row refused; outside/ empty",
    )


# --- 12. file larger than the maximum ---


def test_fault_12_file_larger_than_max(fake, caplog):
    big = text("big", 120_000)
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("big", {"big.txt": big})
    fake.add_item("liar", {"liar.txt": big}, file_meta={"liar.txt": {"size": "1000"}})
    fake.add_item("stream", {"stream.txt": big}, file_meta={"stream.txt": {"size": "1000"}})
    fake.add_fault("data", "no_length", identifier="stream")
    search(fake)
    rows = download(fake, max_file_mb=0.05)
    assert "in metadata, over max_file_mb=0.05" in skipped(rows, "big")
    assert "(Content-Length), over max_file_mb=0.05" in skipped(rows, "liar")
    assert "exceeds max_file_mb=0.05 while streaming" in skipped(rows, "stream")
    assert fake.count("data", "big") == 0
    assert not list(Path(CACHE).rglob("big*")) and not list(Path(CACHE).rglob("liar*"))
    assert not list(Path(CACHE).rglob("stream*"))
    assert logged(caplog, "'stream'", "while streaming")
    assert_final_files_are_whole(rows)
    record(
        "12 file larger than max_file_mb",
        "skipped + logged, no request when metadata says so, stream aborted otherwise",
        f"big ({fake.count('data', 'big')} requests): '{rows['big']['reason']}'; "
        f"liar: '{rows['liar']['reason']}'; stream: '{rows['stream']['reason']}'; no partial kept",
    )


# --- 13. the same identifier twice ---


def test_fault_13_duplicate_search_results(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("b", {"b.txt": text("b")})
    fake.extra_results += ["a", "b", "a"]
    fake.page_size = 2  # the duplicates arrive on later pages
    items = search(fake)
    assert items["identifier"].to_list() == ["a", "b"]
    assert fake.count("metadata", "a") == 1
    assert logged(caplog, "'a'", "more than once")
    rows = download(fake)
    assert fake.count("data", "a") == 1 and list(rows) == ["a", "b"]
    record(
        "13 same identifier twice in search",
        "de-duplicated, logged",
        f"{len(fake.search_results('*:*', None))} results over {fake.count('search')} pages -> "
        f"{items.height} items; metadata requests for a: {fake.count('metadata', 'a')}; "
        f"log: '{[r.getMessage() for r in caplog.records if 'more than once' in r.getMessage()][0]}'",
    )


# --- 14. a slow server exceeding the timeout ---


def test_fault_14_slow_server_exceeds_timeout(fake, caplog):
    runtime = {"timeout_s": 1.0, "retries": 1}  # each timeout costs a second: keep them few
    fake.add_item("a", {"a.txt": text("a", 100_000)})
    fake.add_item("b", {"b.txt": text("b")})
    fake.add_item("c", {"c.txt": text("c", 100_000)})
    fake.add_fault("data", "slow", delay=3, identifier="a")
    fake.add_fault("data", "slow_body", delay=3, identifier="c")
    fake.add_fault("metadata", "slow", times=None, delay=3, identifier="b")
    items = search(fake, runtime=runtime)
    assert items["identifier"].to_list() == ["a", "c"]
    assert logged(caplog, "'b'", "ReadTimeout: read timed out") and fake.count("metadata", "b") == 2
    rows = download(fake, runtime=runtime)
    assert rows["a"]["status"] == "ok" and rows["c"]["status"] == "ok"
    assert [r.headers.get("Range") for r in fake.seen("data", "c")][1].startswith("bytes=")
    assert_final_files_are_whole(rows)

    fake.add_fault("search", "slow", times=None, delay=3)
    with pytest.raises(ArchiveError, match="failed after 2 attempts: ReadTimeout: read timed out") as err:
        search(fake, runtime=runtime)
    record(
        "14 slow server (> timeout_s)",
        "timed out, retried; item skipped if it stays slow; search fails clearly",
        f"a: slow headers, retried [{requests_to(fake, 'data', 'a')}] ok; c: stalled body, resumed "
        f"[{requests_to(fake, 'data', 'c')}] ok; b: '{skip_reason(caplog, 'b')}'; "
        f"slow search: ArchiveError '{message(err)}'",
    )


# --- 15. a file name longer than the file system allows ---


def test_fault_15_file_name_too_long(fake, caplog):
    long_name = "а" * 130 + "_djvu.txt"  # Cyrillic: 269 bytes in UTF-8, over NAME_MAX (errno 36)
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("long", {long_name: text("long")})
    fake.add_item("both", {long_name: text("both"), "both.txt": text("both")})
    items = search(fake)
    assert items["identifier"].to_list() == ["a", "both"]
    assert items.filter(pl.col("identifier") == "both")["file_name"].item() == "both.txt"
    reason = skip_reason(caplog, "long")
    assert "unsafe file name" in reason and "269 bytes" in reason

    # items.parquet is an input too: a row naming the long file is skipped, not a traceback
    items.vstack(
        pl.DataFrame([{**items.row(0, named=True), "identifier": "long", "file_name": long_name}])
    ).write_parquet(ITEMS)
    rows = download(fake)
    assert rows["a"]["status"] == "ok" and rows["both"]["status"] == "ok"
    assert "bytes (UTF-8), over the" in skipped(rows, "long")
    assert fake.count("data", "long") == 0
    assert_final_files_are_whole(rows)
    record(
        "15 file name over NAME_MAX (130 Cyrillic letters)",
        "skipped + logged with its reason, the rest ok",
        f"search: long '{reason[-60:]}'; 'both' took both.txt; tampered row skipped, "
        f"downloads.parquet written ({len(rows)} rows)",
    )


# --- 16. a folder without write permission ---


def _refuse_writes_under(monkeypatch, folder: Path, error: int) -> None:
    """Make opening a file for writing under `folder` fail with `error` in the fetch module.

    Needed where the tests run as root, which ignores a folder's mode bits; elsewhere the test's
    read-only folder alone refuses the write."""
    from archive_encoders.archive import fetch as fetch_module

    real_open = open

    def refusing_open(path, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax") and folder.resolve() in Path(path).resolve().parents:
            raise OSError(error, os.strerror(error), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(fetch_module, "open", refusing_open, raising=False)


def test_fault_16_no_write_permission(fake, caplog, monkeypatch):
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("locked", {"locked.txt": text("locked")})
    search(fake)
    locked = Path(CACHE, "locked")
    locked.mkdir(parents=True)
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes into a read-only folder anyway
        _refuse_writes_under(monkeypatch, locked, errno.EACCES)
    try:
        rows = download(fake)
    finally:
        if locked.exists():
            locked.chmod(0o755)
    reason = skipped(rows, "locked")
    assert "Permission denied (EACCES)" in reason and "locked.txt.part" in reason
    assert rows["a"]["status"] == "ok" and Path(DOWNLOADS).is_file()
    assert logged(caplog, "'locked'", "Permission denied")
    assert_final_files_are_whole(rows)
    record(
        "16 no write permission (read-only item folder)",
        "that file skipped + logged, the rest ok",
        f"locked: '{reason}'; a ok; downloads.parquet written",
    )


# --- 17. a full disk ---


def test_fault_17_disk_full_stops_cleanly_and_keeps_what_finished(fake, caplog, monkeypatch):
    for identifier in "abcde":
        fake.add_item(identifier, {f"{identifier}.txt": text(identifier, 20_000)})
    search(fake)
    # A full disk cannot be made here: the write call of the fetch module fails with ENOSPC from the
    # third file on, as every write does on a full disk.
    from archive_encoders.archive import fetch as fetch_module

    real_open, full = open, {"now": False, "freed": False}

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            full["now"] = True
            self.fh.write(data[: len(data) // 2])  # a real full disk may take part of a write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def filling_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        writing = ("w" in mode or "a" in mode) and not full["freed"]
        if writing and (full["now"] or Path(path).name.startswith("c")):
            return FullDisk(fh)
        return fh

    monkeypatch.setattr(fetch_module, "open", filling_open, raising=False)
    with pytest.raises(ArchiveError, match=r"disk full \(ENOSPC\)") as err:
        download(fake, runtime={"concurrency": 1})
    rows = {r["identifier"]: r for r in pl.read_parquet(DOWNLOADS).to_dicts()}
    assert [rows[i]["status"] for i in "abcde"] == ["ok", "ok", "skipped", "skipped", "skipped"]
    assert "disk full (ENOSPC)" in rows["c"]["reason"]
    assert rows["d"]["reason"] == rows["e"]["reason"] == "not fetched: the disk was full"
    assert fake.count("data", "d") == fake.count("data", "e") == 0
    assert "2 finished file(s) stay in the cache" in str(err.value)
    assert_final_files_are_whole(rows)

    full["freed"] = True  # a rerun after freeing space takes the finished files from the cache
    fake.reset_log()
    rows = download(fake)
    assert all(r["status"] == "ok" for r in rows.values())
    assert fake.count("data", "a") == fake.count("data", "b") == 0
    record(
        "17 disk full (ENOSPC while writing)",
        "stage stops cleanly, finished files kept, downloads.parquet written",
        f"ArchiveError '{str(err.value)[:70]}...'; a, b ok and kept; c: '{rows_reason(err)}'; "
        "d, e not started; rerun fetched only c, d, e",
    )


def rows_reason(err: pytest.ExceptionInfo) -> str:
    return str(err.value).split(":", 1)[0]


# --- 18. a metadata answer far too large ---


def test_fault_18_huge_metadata_answer(fake, caplog):
    fake.add_item("a", {"a.txt": text("a")})
    padding = "x" * (17 * 1024 * 1024)
    fake.set_metadata("huge", f'{{"metadata": {{"identifier": "huge"}}, "files": [], "pad": "{padding}"}}')
    items = search(fake)
    assert items["identifier"].to_list() == ["a"]
    reason = skip_reason(caplog, "huge")
    assert reason == "metadata JSON of 17.0 MiB (Content-Length), over 16 MiB"
    assert fake.count("metadata", "huge") == 1  # as large the next time: not retried
    record("18 metadata answer of 17 MiB", "skipped + logged, not retried", f"huge: '{reason}'")


# --- 19. a metadata answer that drips ---


def test_fault_19_metadata_that_drips_meets_a_deadline(fake, caplog):
    runtime = {"timeout_s": 1.0, "retries": 1}  # deadline 2 s per answer; each byte comes in 0.2 s
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("drip", {"drip.txt": text("drip")})
    fake.add_fault("metadata", "drip", times=None, delay=0.2, identifier="drip")
    started = time.monotonic()
    items = search(fake, runtime=runtime)
    took = time.monotonic() - started
    assert items["identifier"].to_list() == ["a"]
    reason = skip_reason(caplog, "drip")
    assert "metadata JSON still arriving after 2 s" in reason and fake.count("metadata", "drip") == 2
    assert took < 10
    record(
        "19 metadata dripping (1 byte / 0.2 s, timeout_s=1)",
        "deadline per answer, retried, then skipped",
        f"drip: '{reason}'; search took {took:.1f} s",
    )


# --- 20. credentials in archive.base_url ---


def test_fault_20_credentials_in_base_url_are_refused_and_never_logged(fake, caplog):
    from conftest import tiny_config

    from archive_encoders.config import ConfigError, validate

    url = fake.url.replace("http://", "http://user:Pl4nted-pw@")
    config = tiny_config()
    config["archive"] = {"source": "remote", "base_url": url, "query": "*:*"}
    with pytest.raises(ConfigError, match=r"archive\.base_url") as config_err:
        validate(config)
    assert "Pl4nted-pw" not in str(config_err.value)

    fake.add_item("a", {"a.txt": text("a")})
    with pytest.raises(ArchiveError, match="holds credentials") as err:
        search(fake, base_url=url)
    assert "Pl4nted-pw" not in str(err.value) and "Pl4nted-pw" not in caplog.text
    assert fake.count() == 0 and not Path(ITEMS).exists()
    record(
        "20 user:password in archive.base_url",
        "refused at config time and by the stage, never echoed",
        f"config: '{str(config_err.value)[:60]}...'; stage: '{str(err.value)[:60]}...'",
    )


# --- 21. a file that changes between runs, with no md5 in the metadata ---


def test_fault_21_changed_file_without_md5_is_never_spliced_nor_kept_stale(fake, caplog):
    fake.etags = True
    old, new, newer = text("v1", 300_000), text("v2", 300_000), text("v3", 300_000)  # same sizes
    fake.add_item("a", {"a.txt": text("a")})
    fake.add_item("v", {"v.txt": old}, file_meta={"v.txt": {"md5": None}})
    search(fake)
    fake.add_fault("data", "reset", times=None, identifier="v")
    first = download(fake)
    assert "kept" in skipped(first, "v") and list(Path(CACHE).rglob("v.txt.part"))

    fake.faults.clear()  # the file changes on the server before the rerun resumes
    fake.items["v"].files["v.txt"] = new
    fake.reset_log()
    rows = download(fake)
    resume = fake.seen("data", "v")[0]
    assert resume.headers.get("Range", "").startswith("bytes=") and resume.headers.get("If-Range")
    assert resume.response == 200  # the partial's version is gone: the whole file came
    assert Path(rows["v"]["path"]).read_bytes() == new  # not old bytes + new bytes

    fake.items["v"].files["v.txt"] = newer  # changed again, same size: the size proves nothing
    fake.reset_log()
    rows = download(fake)
    assert fake.seen("data", "v")[0].headers.get("If-None-Match")
    assert Path(rows["v"]["path"]).read_bytes() == newer

    fake.reset_log()
    rows = download(fake)  # unchanged: revalidated, not downloaded again
    assert [r.response for r in fake.seen("data", "v")] == [304]
    assert rows["v"]["status"] == "ok" and Path(rows["v"]["path"]).read_bytes() == newer
    assert_final_files_are_whole(rows)
    record(
        "21 file without md5 changed between runs (same size)",
        "If-Range resume gets the whole new file; cache revalidated by ETag, not size",
        f"resume sent Range + If-Range -> 200, file = new version; changed cache -> "
        f"If-None-Match -> new bytes; unchanged -> {fake.seen('data', 'v')[0].response}",
    )
