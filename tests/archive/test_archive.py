"""Download stage: path safety, file choice, normalisation, md5, resume, cache, local source, secrets.

Everything that talks HTTP drives the real `internetarchive` client against tests/support/fake_archive.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path

import polars as pl
import pytest
from support.fake_archive import FAST_RUNTIME, FakeArchive, remote_settings, write_ia_folder

from archive_encoders import archive
from archive_encoders.archive import DOWNLOAD_SCHEMA, ITEM_SCHEMA, ArchiveError, UnsafePathError, session
from archive_encoders.archive.files import file_md5
from archive_encoders.archive.metadata import as_list, as_text, pick_file
from archive_encoders.archive.redact import RedactFilter
from archive_encoders.archive.retry import (
    MAX_BACKOFF_S,
    MAX_RETRY_AFTER_S,
    HTTPStatusError,
    describe,
    is_transient,
    retry_after_s,
)
from archive_encoders.archive.safety import file_name_problem, identifier_problem, safe_target
from archive_encoders.archive.session import Runtime

ITEMS = "results/corpus/items.parquet"
DOWNLOADS = "results/corpus/downloads.parquet"
CACHE = "resources/archive"


@pytest.fixture
def fake():
    with FakeArchive() as server:
        yield server


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in a fresh working directory, as Snakemake does, so every path stays relative."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def text(identifier: str, size: int = 3000) -> bytes:
    line = f"{identifier}: a line of text from the scan.\n".encode()
    return (line * (size // len(line) + 1))[:size]


def run_stage(fake, max_file_mb=1.0, runtime=None, **settings):
    runtime = {**FAST_RUNTIME, **(runtime or {})}
    archive.search(remote_settings(fake, **settings), ITEMS, runtime=runtime)
    return archive.download(ITEMS, DOWNLOADS, CACHE, max_file_mb, {"base_url": fake.url}, runtime)


# --- path safety ---


@pytest.mark.parametrize("identifier", ["book1", "Voyna_i_mir.1869", "a-b_c.d", "_hidden9"])
def test_safe_identifiers_pass(identifier):
    assert identifier_problem(identifier) is None


@pytest.mark.parametrize(
    ("identifier", "why"),
    [
        ("", "empty"),
        (None, "empty"),
        ("..", "relative"),
        (".", "relative"),
        ("../etc", "separator"),
        ("/etc", "separator"),
        ("a\\b", "separator"),
        ("a\x00b", "NUL"),
        ("a b", "characters"),
        (".hidden", "characters"),
        ("x" * 201, "characters"),
    ],
)
def test_unsafe_identifiers_rejected(identifier, why):
    assert why in identifier_problem(identifier)


@pytest.mark.parametrize("name", ["a_djvu.txt", "sub/dir/a.txt", "Война и мир.txt", "a..b.txt"])
def test_safe_file_names_pass(name):
    assert file_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("../a.txt", "'..'"),
        ("sub/../../a.txt", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\x00.txt", "NUL"),
        ("a\\..\\b.txt", "backslash"),
        ("a//b.txt", "empty"),
        ("./a.txt", "'.'"),
        ("a\n.txt", "control"),
    ],
)
def test_unsafe_file_names_rejected(name, why):
    assert why in file_name_problem(name)


def test_safe_target_stays_inside_and_refuses_symlink_escapes(tmp_path):
    root = tmp_path / "cache"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    assert safe_target(root, "book", "sub/a.txt") == root / "book" / "sub" / "a.txt"
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="resolves outside"):
        safe_target(root, "linked", "a.txt")
    (root / "book").mkdir()
    (root / "book" / "a.txt").symlink_to(outside / "victim.txt")
    with pytest.raises(UnsafePathError, match="resolves outside"):
        safe_target(root, "book", "a.txt")
    with pytest.raises(UnsafePathError, match="identifier"):
        safe_target(root, "..", "a.txt")
    with pytest.raises(UnsafePathError, match="file name"):
        safe_target(root, "book", "../../a.txt")


# --- file choice, normalisation, md5 ---


def test_pick_file_follows_preference_order():
    files = [{"name": "b.txt"}, {"name": "b.pdf"}, {"name": "b_djvu.txt"}, {"name": "a.txt"}]
    assert pick_file(files, ["*_djvu.txt", "*.txt"])[0]["name"] == "b_djvu.txt"
    assert pick_file(files, ["*.txt"])[0]["name"] == "a.txt"  # several matches: stable, by name
    assert pick_file(files, ["*.pdf", "*.txt"])[0]["name"] == "b.pdf"
    chosen, reason = pick_file(files, ["*.epub"])
    assert chosen is None and "no text file matching ['*.epub']" in reason


def test_pick_file_skips_unsafe_names_and_says_so():
    files = [{"name": "../../evil_djvu.txt"}, {"name": "ok.txt"}]
    assert pick_file(files, ["*_djvu.txt", "*.txt"])[0]["name"] == "ok.txt"
    chosen, reason = pick_file([{"name": "/etc/x_djvu.txt"}, {"name": 3}, "junk"], ["*_djvu.txt"])
    assert chosen is None and "unsafe file name" in reason and "absolute" in reason


def test_pick_file_prefers_the_shallowest_match():
    files = [{"name": "a/deep_djvu.txt"}, {"name": "z_djvu.txt"}]
    assert pick_file(files, ["*_djvu.txt"])[0]["name"] == "z_djvu.txt"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("rus", ["rus"]),
        (" Russian ", ["Russian"]),
        (["rus", "eng", "rus", ""], ["rus", "eng"]),
        ([["nested"], {"a": 1}, None, 7], ["7"]),
        ("", []),
    ],
)
def test_as_list_normalises_string_or_list(value, expected):
    assert as_list(value) == expected


def test_as_text_joins_lists():
    assert as_text(["Tolstoy, L.", "Maude, A."]) == "Tolstoy, L.; Maude, A."
    assert as_text("  Title ") == "Title"
    assert as_text([]) is None and as_text(None) is None


def test_file_md5_matches_hashlib(tmp_path):
    data = b"\x00\xff" * 700_000
    (tmp_path / "f").write_bytes(data)
    assert file_md5(tmp_path / "f") == hashlib.md5(data).hexdigest()


def test_runtime_defaults_and_backoff():
    rt = Runtime.from_mapping({"retries": 0, "backoff_s": 0.5, "query": "ignored"})
    assert (rt.concurrency, rt.retries, rt.timeout_s) == (4, 0, 60.0)  # the schema's defaults
    policy = rt.policy()
    assert [policy.delay(n, None) for n in (1, 2, 3)] == [
        (0.5, "backoff"),
        (1.0, "backoff"),
        (2.0, "backoff"),
    ]
    assert Runtime.from_mapping({"backoff_s": 10}).policy().delay(20, None) == (MAX_BACKOFF_S, "backoff")


def test_retry_after_is_capped_and_junk_ignored():
    for header, expected in (("3", 3), ("99999", MAX_RETRY_AFTER_S), ("soon", None)):
        assert retry_after_s(header) == expected
    policy = Runtime.from_mapping({"backoff_s": 0.25}).policy()
    assert policy.delay(1, HTTPStatusError(429, retry_after="3")) == (3, "Retry-After")
    assert policy.delay(2, HTTPStatusError(503, retry_after="soon")) == (0.5, "backoff")
    assert policy.delay(1, HTTPStatusError(500, retry_after="3")) == (0.25, "backoff")  # only 429/503


def test_errors_are_classified_by_type_not_by_message():
    import requests
    import urllib3

    reset = requests.exceptions.ChunkedEncodingError(
        urllib3.exceptions.ProtocolError("Connection broken", ConnectionResetError(104, "peer"))
    )
    assert is_transient(reset) and describe(reset) == "ChunkedEncodingError: connection reset by the server"
    cut = urllib3.exceptions.ProtocolError("broken", urllib3.exceptions.IncompleteRead(209, 105))
    assert describe(requests.exceptions.ChunkedEncodingError(cut)).endswith("(209 bytes read, 105 missing)")
    assert not is_transient(ValueError("Connection reset by peer; read timed out"))  # words are not a type
    assert describe(ValueError("Connection reset by peer")) == "ValueError: Connection reset by peer"
    assert [is_transient(HTTPStatusError(s)) for s in (429, 500, 503, 400, 404)] == [1, 1, 1, 0, 0]

    # internetarchive's get_metadata re-raises `type(exc)(message)`: the status survives in the context
    response = requests.Response()
    response.status_code, response.reason, response.url = 503, "Service Unavailable", "http://h/metadata/x"

    def like_get_metadata():
        try:
            raise requests.exceptions.HTTPError("503 Server Error", response=response)
        except Exception as exc:
            raise type(exc)(f"Error retrieving metadata, {exc}")  # noqa: B904 - as the client does

    with pytest.raises(requests.exceptions.HTTPError) as rewrapped:
        like_get_metadata()
    assert rewrapped.value.response is None
    status = HTTPStatusError.from_error(rewrapped.value)
    assert (status.status, status.path, status.transient) == (503, "/metadata/x", True)


def test_half_set_credentials_are_a_clear_error(monkeypatch):
    monkeypatch.setenv("IA_ACCESS_KEY_ID", "only-the-access-key")
    monkeypatch.delenv("IA_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ArchiveError, match="IA_SECRET_ACCESS_KEY"):
        session.make_session("http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("scheme", "host", "allowed"),
    [
        ("https", "archive.org", True),
        ("https", "ia801234.us.archive.org", True),
        ("http", "archive.org", False),  # never in clear text
        ("https", "archive.org.evil.example", False),
        ("https", "evilarchive.org", False),
        ("https", "127.0.0.1", False),
    ],
)
def test_credentials_only_go_to_archive_org_over_https(scheme, host, allowed):
    assert session.credentials_allowed(scheme, host) is allowed


def test_bad_base_url_is_a_clear_error():
    with pytest.raises(ArchiveError, match="archive.base_url"):
        session.make_session("ftp://mirror")


# --- search against the fake ---


def test_search_writes_the_items_contract(fake, workdir):
    fake.add_item(
        "voyna",
        {"voyna_djvu.txt": text("voyna"), "voyna.txt": b"plain", "voyna.pdf": b"%PDF"},
        {
            "title": "Война и мир",
            "creator": ["Толстой, Л. Н.", "Tolstoy"],
            "date": "1869",
            "language": "rus",
            "collection": ["russianlibrary", "americana"],
            "subject": ["Russian fiction", "Napoleonic Wars, 1800-1815", "Russian fiction"],
            "licenseurl": "http://creativecommons.org/publicdomain/mark/1.0/",
            "description": "<p>Роман-эпопея о войне 1812&nbsp;года.</p>\n<p>Том <b>первый</b>.</p>",
        },
    )
    fake.add_item(
        "tales",
        {"tales.txt": text("tales")},
        {
            "language": ["Russian", "eng"],
            "collection": "x",
            "subject": " Fairy tales ",
            "description": ["Folk tales", "retold &amp; illustrated"],
        },
    )
    fake.add_item("bare", {"bare.txt": text("bare")})
    items = archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    on_disk = pl.read_parquet(ITEMS)
    assert on_disk.schema == pl.Schema(ITEM_SCHEMA)
    assert on_disk.equals(items)
    voyna, tales, bare = on_disk.sort("identifier", descending=True).to_dicts()
    assert voyna["file_name"] == "voyna_djvu.txt" and voyna["file_format"] == "DjVuTXT"
    assert voyna["file_size"] == 3000 and voyna["file_md5"] == hashlib.md5(text("voyna")).hexdigest()
    assert voyna["language"] == ["rus"] and voyna["collection"] == ["russianlibrary", "americana"]
    assert voyna["creator"] == "Толстой, Л. Н.; Tolstoy" and voyna["date"] == "1869"
    assert tales["language"] == ["Russian", "eng"] and tales["collection"] == ["x"]
    assert tales["title"] is None and tales["file_name"] == "tales.txt"
    # subject, like collection: a string or a list on archive.org, always a list here
    assert voyna["subject"] == ["Russian fiction", "Napoleonic Wars, 1800-1815"]
    assert tales["subject"] == ["Fairy tales"] and bare["subject"] == [] and bare["collection"] == []
    # description: one plain string (HTML dropped, entities unescaped, a list joined); null when absent
    assert voyna["description"] == "Роман-эпопея о войне 1812 года. Том первый."
    assert tales["description"] == "Folk tales retold & illustrated" and bare["description"] is None


def test_search_pages_with_the_cursor_and_honours_sort_and_max_items(fake, workdir):
    for i in range(5):
        fake.add_item(f"item{i}", {f"item{i}.txt": text(f"item{i}")}, {"downloads": str(i)})
    fake.page_size = 2
    items = archive.search(remote_settings(fake, sort="downloads desc"), ITEMS, runtime=FAST_RUNTIME)
    assert items["identifier"].to_list() == ["item4", "item3", "item2", "item1", "item0"]
    assert [r.query.get("cursor") for r in fake.seen("search")] == [None, ["2"], ["4"]]
    assert fake.seen("search")[0].query["sorts"] == ["downloads desc"]

    fake.reset_log()
    items = archive.search(remote_settings(fake, max_items=3), ITEMS, runtime=FAST_RUNTIME)
    assert items["identifier"].to_list() == ["item0", "item1", "item2"]
    assert fake.count("metadata") == 3  # items past max_items are never looked up


def test_search_with_no_usable_item_fails_clearly(fake, workdir):
    fake.add_item("scan", {"scan.pdf": b"%PDF"})
    with pytest.raises(ArchiveError, match="no usable item"):
        archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    assert not Path(ITEMS).exists()


def test_search_rejected_query_fails_at_once(fake, workdir):
    fake.add_fault("search", "status", status=400)
    with pytest.raises(ArchiveError, match="400"):
        archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    assert fake.count("search") == 1  # a client error is not retried


# --- download: md5, cache, widening, resume ---


def test_download_writes_the_contract_and_verifies_md5(fake, workdir):
    fake.add_item("a", {"a_djvu.txt": text("a")})
    fake.add_item("b", {"sub/b.txt": text("b", 70_000)})
    downloads = run_stage(fake)
    assert pl.read_parquet(DOWNLOADS).schema == pl.Schema(DOWNLOAD_SCHEMA)
    rows = {r["identifier"]: r for r in downloads.to_dicts()}
    assert rows["a"]["path"] == "resources/archive/a/a_djvu.txt"
    assert rows["b"]["path"] == "resources/archive/b/sub/b.txt"
    for identifier, size in (("a", 3000), ("b", 70_000)):
        row = rows[identifier]
        assert row["status"] == "ok" and row["reason"] is None and row["bytes"] == size
        assert row["md5"] == file_md5(row["path"])
    assert Path(rows["b"]["path"]).read_bytes() == text("b", 70_000)
    assert not list(Path(CACHE).rglob("*.part"))
    # the client's cnt=0 (downloads do not count as views) is kept
    assert all(r.query.get("cnt") == ["0"] for r in fake.seen("download"))


def test_rerun_downloads_nothing(fake, workdir):
    for name in ("a", "b", "c"):
        fake.add_item(name, {f"{name}.txt": text(name)})
    run_stage(fake)
    assert fake.count("data") == 3
    fake.reset_log()
    downloads = run_stage(fake)  # search again, then download: every file is cached
    assert fake.count("download") == 0 and fake.count("data") == 0
    assert downloads["status"].to_list() == ["ok"] * 3


def test_widened_query_downloads_only_the_new_items(fake, workdir):
    for name, coll in (("a", "first"), ("b", "first"), ("c", "second"), ("d", "second")):
        fake.add_item(name, {f"{name}.txt": text(name)}, {"collection": coll})
    first = run_stage(fake, query="collection:first")
    assert first["identifier"].to_list() == ["a", "b"]
    fake.reset_log()
    wider = run_stage(fake, query="collection:first OR collection:second")
    assert wider["identifier"].to_list() == ["a", "b", "c", "d"]
    assert sorted(r.identifier for r in fake.seen("data")) == ["c", "d"]


def test_partial_file_is_resumed_with_range_and_verified(fake, workdir):
    data = text("big", 200_000)
    fake.add_item("big", {"big_djvu.txt": data})
    archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    part = Path(CACHE, "big", "big_djvu.txt.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:120_000])  # a previous run was killed here
    downloads = archive.download(ITEMS, DOWNLOADS, CACHE, 1, {"base_url": fake.url}, FAST_RUNTIME)
    assert downloads["status"].to_list() == ["ok"]
    assert [r.headers.get("Range") for r in fake.seen("data")] == ["bytes=120000-"]
    assert [r.response for r in fake.seen("data")] == [206]
    assert Path(CACHE, "big", "big_djvu.txt").read_bytes() == data
    assert not part.exists()


def test_stale_partial_that_fails_md5_is_downloaded_again_from_scratch(fake, workdir, caplog):
    data = text("doc", 50_000)
    fake.add_item("doc", {"doc.txt": data})
    archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    part = Path(CACHE, "doc", "doc.txt.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"X" * 20_000)  # bytes of an older version of the file
    downloads = archive.download(ITEMS, DOWNLOADS, CACHE, 1, {"base_url": fake.url}, FAST_RUNTIME)
    assert downloads["status"].to_list() == ["ok"]
    assert [r.headers.get("Range") for r in fake.seen("data")] == ["bytes=20000-", None]
    assert Path(CACHE, "doc", "doc.txt").read_bytes() == data
    assert "md5 mismatch after a resumed download" in caplog.text


def test_complete_partial_is_verified_without_a_request(fake, workdir):
    data = text("done", 10_000)
    fake.add_item("done", {"done.txt": data})
    archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    part = Path(CACHE, "done", "done.txt.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data)  # killed between the last byte and the rename
    downloads = archive.download(ITEMS, DOWNLOADS, CACHE, 1, {"base_url": fake.url}, FAST_RUNTIME)
    assert downloads["status"].to_list() == ["ok"] and fake.count("data") == 0
    assert Path(CACHE, "done", "done.txt").read_bytes() == data


def test_partial_longer_than_the_remote_file_starts_over(fake, workdir):
    data = text("shrunk", 4_000)
    fake.add_item("shrunk", {"shrunk.txt": data}, file_meta={"shrunk.txt": {"size": None}})  # size unknown
    archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    part = Path(CACHE, "shrunk", "shrunk.txt.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"y" * 6_000)
    downloads = archive.download(ITEMS, DOWNLOADS, CACHE, 1, {"base_url": fake.url}, FAST_RUNTIME)
    assert downloads["status"].to_list() == ["ok"]
    seen = [(r.headers.get("Range"), r.response) for r in fake.seen("data")]
    assert seen == [("bytes=6000-", 416), (None, 200)]
    assert Path(CACHE, "shrunk", "shrunk.txt").read_bytes() == data


def test_download_fails_clearly_when_no_file_can_be_had(fake, workdir):
    fake.add_item("a", {"a.txt": text("a")}, file_meta={"a.txt": {"md5": "f" * 32}})
    archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    with pytest.raises(ArchiveError, match="no file could be downloaded"):
        archive.download(ITEMS, DOWNLOADS, CACHE, 1, {"base_url": fake.url}, FAST_RUNTIME)
    assert not Path(DOWNLOADS).exists()


def test_cached_file_that_no_longer_matches_is_replaced(fake, workdir):
    data = text("ed", 5_000)
    fake.add_item("ed", {"ed.txt": data})
    archive.search(remote_settings(fake), ITEMS, runtime=FAST_RUNTIME)
    cached = Path(CACHE, "ed", "ed.txt")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"an older edition")
    downloads = archive.download(ITEMS, DOWNLOADS, CACHE, 1, {"base_url": fake.url}, FAST_RUNTIME)
    assert downloads["status"].to_list() == ["ok"] and fake.count("data") == 1
    assert cached.read_bytes() == data


# --- local source ---


def test_local_meta_xml_keeps_the_words_of_raw_html_in_a_description(workdir):
    folder = Path("mirror/archive/rawhtml")
    folder.mkdir(parents=True)
    (folder / "rawhtml.txt").write_bytes(text("rawhtml"))
    (folder / "rawhtml_meta.xml").write_text(
        "<metadata><identifier>rawhtml</identifier><description>A <b>bound</b> volume<br/>of "
        "<a href='x'>letters</a>, 1850&#8211;1860</description></metadata>",
        encoding="utf-8",
    )
    settings = {"source": "local", "local_dir": "mirror/archive", "max_items": 1, "file_preference": ["*"]}
    items = archive.search(settings, ITEMS, runtime=FAST_RUNTIME)
    assert items["description"].to_list() == ["A bound volume of letters, 1850–1860"]


def test_local_source_reads_ia_download_layout(workdir):
    root = write_ia_folder(
        Path("mirror/archive"),
        {
            "withmeta": {"withmeta_djvu.txt": text("withmeta"), "withmeta.pdf": b"%PDF"},
            "bare": {"bare.txt": text("bare")},
            "nopdf": {"nopdf.pdf": b"%PDF"},
            "tampered": {"tampered.txt": text("tampered")},
        },
        meta={
            "withmeta": {
                "title": "Заглавие",
                "creator": ["A", "B"],
                "language": "rus",
                "collection": "c1",
                "subject": ["Русская литература", "История"],
                "description": "&lt;p&gt;Записки о &lt;i&gt;старине&lt;/i&gt;&lt;/p&gt;",
            },
            "bare": {"subject": "Сказки"},
        },
    )
    # tampered: archive.org's _files.xml says another md5 than the local copy has
    (root / "tampered" / "tampered_files.xml").write_text(
        '<files><file name="tampered.txt" source="original"><md5>0123456789abcdef0123456789abcdef</md5>'
        "<size>3000</size><format>Text</format></file></files>",
        encoding="utf-8",
    )
    outside = Path("secret.txt")
    outside.write_text("not part of the archive")
    (root / "bare" / "zz_link.txt").symlink_to(outside.resolve())  # a symlink out is ignored
    settings = {
        "source": "local",
        "local_dir": "mirror/archive",
        "max_items": 10,
        "file_preference": ["*.txt"],
    }
    items = archive.search(settings, ITEMS, runtime=FAST_RUNTIME)
    assert items["identifier"].to_list() == ["bare", "tampered", "withmeta"]  # nopdf skipped
    withmeta = items.filter(pl.col("identifier") == "withmeta").to_dicts()[0]
    assert withmeta["title"] == "Заглавие" and withmeta["creator"] == "A; B"
    assert withmeta["language"] == ["rus"] and withmeta["collection"] == ["c1"]
    assert withmeta["subject"] == ["Русская литература", "История"]  # repeated <subject> in _meta.xml
    assert items.filter(pl.col("identifier") == "bare")["subject"].item().to_list() == ["Сказки"]
    assert items.filter(pl.col("identifier") == "tampered")["subject"].item().to_list() == []
    assert withmeta["description"] == "Записки о старине"  # escaped HTML in _meta.xml, cleaned
    assert items.filter(pl.col("identifier") == "bare")["description"].item() is None
    assert withmeta["file_md5"] == hashlib.md5(text("withmeta")).hexdigest()
    assert items.filter(pl.col("identifier") == "bare")["file_name"].item() == "bare.txt"

    downloads = archive.download(ITEMS, DOWNLOADS, CACHE, 1, settings)
    rows = {r["identifier"]: r for r in downloads.to_dicts()}
    # paths are relative to local_dir's parent (docs/ARCHITECTURE.md)
    assert rows["bare"]["path"] == "archive/bare/bare.txt" and rows["bare"]["status"] == "ok"
    assert Path("mirror", rows["withmeta"]["path"]).read_bytes() == text("withmeta")
    assert rows["tampered"]["status"] == "skipped" and "md5 mismatch" in rows["tampered"]["reason"]
    assert archive.downloaded_file(rows["bare"]["path"], settings).read_bytes() == text("bare")
    assert not Path(CACHE).exists()  # nothing copied


@pytest.mark.timeout(30)  # before the fix, reading the FIFO blocked for ever
def test_local_source_skips_dangling_links_fifos_and_unreadable_files(workdir, monkeypatch, caplog):
    root = write_ia_folder(
        Path("mirror/archive"),
        {
            "ok": {"ok.txt": text("ok")},
            "dangling": {"dangling_djvu.txt": b"", "dangling.txt": text("dangling")},
            "fifo": {"fifo.txt": text("fifo")},
            "locked": {"locked.txt": text("locked")},
        },
    )
    (root / "dangling" / "dangling_djvu.txt").unlink()
    (root / "dangling" / "dangling_djvu.txt").symlink_to(root / "dangling" / "gone_djvu.txt")
    os.mkfifo(root / "fifo" / "fifo_djvu.txt")  # preferred over fifo.txt, and a read would block
    locked = root / "locked" / "locked.txt"
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads a mode-0 file anyway: make the check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **k: Path(p) != locked and real_access(p, m, **k))
    settings = {"source": "local", "local_dir": "mirror/archive", "max_items": 10}
    items = archive.search(settings, ITEMS, runtime=FAST_RUNTIME)
    chosen = dict(zip(items["identifier"], items["file_name"], strict=True))
    assert chosen == {"dangling": "dangling.txt", "fifo": "fifo.txt", "ok": "ok.txt"}
    assert "ignoring 'dangling_djvu.txt': cannot be read (No such file or directory)" in caplog.text
    assert "ignoring 'fifo_djvu.txt': not a regular file" in caplog.text
    assert "ignoring 'locked.txt': no read permission" in caplog.text
    rows = {r["identifier"]: r for r in archive.download(ITEMS, DOWNLOADS, CACHE, 1, settings).to_dicts()}
    assert {i: r["status"] for i, r in rows.items()} == {"dangling": "ok", "fifo": "ok", "ok": "ok"}


def test_local_source_hashes_no_file_over_max_file_mb(workdir, monkeypatch):
    from archive_encoders.archive import local

    files = {"big": {"big.txt": text("big", 300_000)}, "small": {"small.txt": text("small")}}
    write_ia_folder(Path("mirror/archive"), files)
    hashed = []
    real_md5 = local.file_md5
    monkeypatch.setattr(local, "file_md5", lambda path: hashed.append(Path(path).name) or real_md5(path))
    settings = {"source": "local", "local_dir": "mirror/archive", "max_file_mb": 0.1}
    items = archive.search(settings, ITEMS, runtime=FAST_RUNTIME)
    assert items["identifier"].to_list() == ["big", "small"]
    rows = {r["identifier"]: r for r in archive.download(ITEMS, DOWNLOADS, CACHE, 0.1, settings).to_dicts()}
    assert "over max_file_mb=0.1" in rows["big"]["reason"] and rows["small"]["status"] == "ok"
    assert "big.txt" not in hashed and "small.txt" in hashed


def test_local_source_missing_folder_is_a_clear_error(workdir):
    with pytest.raises(ArchiveError, match="archive.local_dir"):
        archive.search({"source": "local", "local_dir": "nowhere"}, ITEMS)


# --- credentials ---

ACCESS, SECRET = "PLANTEDaccessKEY123", "PLANTEDsecretKEY-s3cr3t-0987"
INI_ACCESS, INI_SECRET, COOKIE = "INIaccessKEY456", "INIsecretKEY-ini-6543", "COOKIEsignature-777"


@pytest.fixture
def planted_credentials(tmp_path, monkeypatch):
    """A user's ia.ini (IA_CONFIG_FILE) with keys and a login cookie, outside the working directory."""
    home = tmp_path / "home"
    home.mkdir()
    ini = home / "ia.ini"
    ini.write_text(
        f"[s3]\naccess = {INI_ACCESS}\nsecret = {INI_SECRET}\n\n"
        f"[cookies]\nlogged-in-user = someone@example.org\nlogged-in-sig = {COOKIE}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("IA_CONFIG_FILE", str(ini))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def debug_log(planted_credentials):
    """A DEBUG file log on the root logger (as log_to sets up), the client's and urllib3's loggers on."""
    handler = logging.FileHandler(planted_credentials / "stage.log")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield Path("stage.log")
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


def _grep_tree(folder: Path, secrets) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.relative_to(folder)}: {s}" for s in secrets if s.encode() in data]
    return hits


def test_keys_are_never_sent_to_a_non_archive_host_nor_written(
    fake, planted_credentials, debug_log, monkeypatch
):
    monkeypatch.setenv("IA_ACCESS_KEY_ID", ACCESS)
    monkeypatch.setenv("IA_SECRET_ACCESS_KEY", SECRET)
    fake.add_item("a", {"a.txt": text("a")})
    run_stage(fake)
    secrets = (ACCESS, SECRET, INI_ACCESS, INI_SECRET, COOKIE)
    for request in fake.requests:
        sent = " ".join(f"{k}: {v}" for k, v in request.headers.items())
        assert not [s for s in secrets if s in sent], f"{request.route} request carried a credential"
    assert debug_log.read_text().count("\n") > 5  # the log really was written
    assert _grep_tree(planted_credentials, secrets) == []


def test_keys_used_for_archive_org_never_reach_logs_or_outputs(
    fake, planted_credentials, debug_log, monkeypatch
):
    # Treat the fake as archive.org, so the user's ia.ini keys are loaded and sent (LOW auth).
    monkeypatch.setattr(session, "credentials_allowed", lambda scheme, host: True)
    fake.add_item("a", {"a.txt": text("a")})
    run_stage(fake)
    auth = [r.headers.get("Authorization") for r in fake.seen("metadata")]
    assert auth == [f"LOW {INI_ACCESS}:{INI_SECRET}"]  # the keys were honoured
    # A library that logs a header or a cookie (a debug line, a traceback) is redacted on the handler.
    logging.getLogger("internetarchive.session").debug("headers: Authorization: %s", auth[0])
    try:
        raise RuntimeError(f"request failed with cookie {COOKIE}")
    except RuntimeError:
        logging.getLogger("urllib3").exception("boom")
    log_text = debug_log.read_text()
    assert "Authorization: LOW ***:***" in log_text and "cookie ***" in log_text
    assert _grep_tree(planted_credentials, (INI_SECRET, COOKIE, f"{INI_ACCESS}:")) == []


def test_redact_filter_covers_message_args_and_traceback():
    flt = RedactFilter()
    flt.secrets.add("hunter22")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", ("hunter22",), None)
    assert flt.filter(record) and record.getMessage() == "key=***"
    try:
        raise ValueError("hunter22 in a traceback")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    flt.filter(record)
    assert "hunter22" not in record.exc_text and "*** in a traceback" in record.exc_text
