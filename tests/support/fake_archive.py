"""A fake archive.org: a real HTTP server on 127.0.0.1 for the download stage's tests.

It speaks the three endpoints the `internetarchive` client uses (FACTS.md):

- `POST /services/search/v1/scrape` (q, fields, sorts, count, cursor) with cursor paging: each answer
  holds `count` results (or `page_size`, when smaller) and, unless it is the last, a `cursor`;
- `GET /metadata/<identifier>` (`{}` for an unknown item);
- `GET /download/<identifier>/<name>`, a 302 to `/data/<identifier>/<name>`, which serves the bytes
  with Range support.

Items come from a folder in `ia download` layout (`load_folder`) and/or `add_item`; `set_metadata`,
`file_meta` and `extra_results` override what the server says about them. Each fault is a switch:
`add_fault(route, kind, ...)` arms it for the next `times` matching requests (None: for ever), of one
item (`identifier`) or one search page (`cursor`).
Kinds: status (with optional Retry-After), malformed (truncated JSON), reset (TCP RST mid-body), short
(fewer bytes than Content-Length, clean close), slow (sleep before answering), slow_body (sleep
mid-body), no_length (no Content-Length: the body ends when the connection closes), drip (the whole
body one byte every `delay` seconds: each read in time, the answer far too slow).
With `etags = True` file answers carry an ETag (from the bytes, so it changes with them) and honour
If-Range (a Range for another version gets the whole file, 200) and If-None-Match (304).
Every request is recorded (`requests`, `count`) so tests can assert what the client did.

Queries understand `field:value` terms joined by OR (`*:*` or anything else matches every item).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

ROUTES = ("search", "metadata", "download", "data")
FAULT_KINDS = ("status", "malformed", "reset", "short", "slow", "slow_body", "no_length", "drip")
SCRAPE_PATH = "/services/search/v1/scrape"


@dataclass
class Fault:
    route: str
    kind: str
    times: int | None = 1  # None: every matching request
    identifier: str | None = None  # None: any item (and the search route)
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    cursor: str | None = None  # search route: only the page asked for with this cursor


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    route: str
    identifier: str | None
    name: str | None
    headers: dict[str, str]
    query: dict[str, list[str]]
    time: float
    response: int | str = 0  # status code, or the fault applied


@dataclass
class FakeItem:
    identifier: str
    files: dict[str, bytes]
    metadata: dict[str, Any] = field(default_factory=dict)
    file_meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-file overrides
    raw_metadata: Any = None  # replaces the whole /metadata answer (a dict, or a str sent as is)


def _format_of(name: str) -> str:
    if name.endswith("_djvu.txt"):
        return "DjVuTXT"
    if name.endswith(".txt"):
        return "Text"
    if name.endswith(".pdf"):
        return "Text PDF"
    if name.endswith(".xml"):
        return "Metadata"
    return "Unknown"


class FakeArchive:
    def __init__(self, page_size: int | None = None) -> None:
        self.items: dict[str, FakeItem] = {}
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self.extra_results: list[str] = []  # identifiers appended to every search answer
        # Results per scrape page at most: below the client's `count` (>= 100 on archive.org), so a
        # test pages through the cursor with a handful of items.
        self.page_size = page_size
        self.etags = False  # file answers carry an ETag and honour If-Range / If-None-Match
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-archive",
            daemon=True,
        )

    # --- lifecycle ---

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FakeArchive:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeArchive:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- content ---

    def add_item(
        self,
        identifier: str,
        files: dict[str, bytes],
        metadata: dict[str, Any] | None = None,
        file_meta: dict[str, dict[str, Any]] | None = None,
    ) -> FakeItem:
        item = FakeItem(identifier, dict(files), dict(metadata or {}), dict(file_meta or {}))
        with self.lock:
            self.items[identifier] = item
        return item

    def set_metadata(self, identifier: str, raw: Any) -> None:
        """Replace the /metadata answer for `identifier` ({} = missing/dark; a str is sent verbatim)."""
        with self.lock:
            item = self.items.get(identifier) or FakeItem(identifier, {})
            item.raw_metadata = raw
            self.items[identifier] = item

    def load_folder(self, root: str | Path) -> list[str]:
        """Serve every item of a folder in `ia download` layout (`<root>/<identifier>/<files>`)."""
        loaded = []
        for folder in sorted(Path(root).iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            files = {
                p.relative_to(folder).as_posix(): p.read_bytes()
                for p in sorted(folder.rglob("*"))
                if p.is_file()
            }
            metadata = {}
            meta_xml = folder / f"{folder.name}_meta.xml"
            if meta_xml.is_file():
                for child in ET.parse(meta_xml).getroot():
                    text = (child.text or "").strip()
                    if child.tag == "description":  # served as archive.org does: HTML in a string
                        inner = "".join(ET.tostring(c, encoding="unicode") for c in child)
                        text = ((child.text or "") + inner).strip()
                    if text:
                        old = metadata.get(child.tag)
                        metadata[child.tag] = (
                            text if old is None else [*([old] if isinstance(old, str) else old), text]
                        )
            self.add_item(folder.name, files, metadata)
            loaded.append(folder.name)
        return loaded

    def add_fault(
        self,
        route: str,
        kind: str,
        times: int | None = 1,
        identifier: str | None = None,
        status: int = 503,
        retry_after: str | None = None,
        delay: float = 0.0,
        cursor: str | None = None,
    ) -> Fault:
        if route not in ROUTES or kind not in FAULT_KINDS:
            raise ValueError(f"unknown route/kind {route!r}/{kind!r}")
        fault = Fault(route, kind, times, identifier, status, retry_after, delay, cursor)
        with self.lock:
            self.faults.append(fault)
        return fault

    # --- what happened ---

    def seen(self, route: str | None = None, identifier: str | None = None) -> list[Seen]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (route is None or r.route == route) and (identifier is None or r.identifier == identifier)
            ]

    def count(self, route: str | None = None, identifier: str | None = None) -> int:
        return len(self.seen(route, identifier))

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()

    # --- server side ---

    def _take_fault(self, route: str, identifier: str | None, cursor: str | None = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.route != route or (fault.identifier not in (None, identifier)):
                    continue
                if fault.cursor is not None and fault.cursor != cursor:
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                return fault
        return None

    def metadata_json(self, identifier: str) -> Any:
        item = self.items.get(identifier)
        if item is None:
            return {}
        if item.raw_metadata is not None:
            return item.raw_metadata
        files = []
        for name, data in item.files.items():
            entry = {
                "name": name,
                "source": "original",
                "format": _format_of(name),
                "size": str(len(data)),
                "md5": hashlib.md5(data).hexdigest(),
                "mtime": "1700000000",
            }
            entry.update(item.file_meta.get(name, {}))
            files.append(entry)
        for name, extra in item.file_meta.items():  # files that exist only in the metadata
            if name not in item.files:
                files.append({"name": name, "source": "original", "format": _format_of(name), **extra})
        metadata = {"identifier": identifier, "mediatype": "texts", **item.metadata}
        return {
            "created": 1700000000,
            "dir": f"/data/{identifier}",
            "files": files,
            "files_count": len(files),
            "item_size": sum(len(d) for d in item.files.values()),
            "metadata": metadata,
            "server": self.host,
        }

    def search_results(self, q: str, sorts: str | None) -> list[str]:
        with self.lock:
            items = list(self.items.values())
            extra = list(self.extra_results)
        terms = re.findall(r"(\w+):\(?\"?([^\s()\"]+)", q or "")
        if q.strip() != "*:*" and terms:
            items = [i for i in items if any(self._matches(i, f, v) for f, v in terms)]
        if sorts:
            key, _, direction = sorts.split(",")[0].strip().partition(" ")
            items.sort(key=lambda i: _sort_key(i, key), reverse=direction.strip().lower() == "desc")
        return [i.identifier for i in items] + extra

    @staticmethod
    def _matches(item: FakeItem, key: str, value: str) -> bool:
        if key == "identifier":
            return item.identifier == value
        got = item.metadata.get(key, "texts" if key == "mediatype" else None)
        values = got if isinstance(got, list) else [got]
        return value in [str(v) for v in values if v is not None]


def _sort_key(item: FakeItem, key: str):
    if key == "identifier":
        return (0, item.identifier)
    value = item.metadata.get(key)
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (1, str(value))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeArchive/1.0"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    @property
    def fake(self) -> FakeArchive:
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        route, identifier, name = self._route(method, path)
        seen = Seen(method, route, identifier, name, dict(self.headers.items()), query, time.monotonic())
        with self.fake.lock:
            self.fake.requests.append(seen)
        self.close_connection = True
        cursor = query.get("cursor", [None])[0]
        fault = self.fake._take_fault(route, identifier, cursor) if route in ROUTES else None
        try:
            if fault is not None:
                seen.response = fault.kind
                if self._apply_fault(fault, route, identifier, name, query):
                    return
            if route == "search":
                self._search(query, seen)
            elif route == "metadata":
                self._json(self.fake.metadata_json(identifier), seen)
            elif route == "download":
                self._redirect(identifier, name, seen)
            elif route == "data":
                self._data(identifier, name, seen)
            else:
                self._send(404, b"not found", seen=seen)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client gave up (a timeout test); nothing to tell it

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, str | None, str | None]:
        if method == "POST" and path == SCRAPE_PATH:
            return "search", None, None
        for route in ("metadata", "download", "data"):
            prefix = f"/{route}/"
            if method == "GET" and path.startswith(prefix):
                identifier, _, name = path[len(prefix) :].partition("/")
                return route, identifier, name or None
        return "other", None, None

    # --- normal answers ---

    def _send(self, status: int, body: bytes, content_type: str = "text/plain", headers=None, seen=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        if seen is not None and not isinstance(seen.response, str):
            seen.response = status

    def _json(self, obj: Any, seen: Seen) -> None:
        body = obj.encode() if isinstance(obj, str) else json.dumps(obj).encode()
        self._send(200, body, "application/json", seen=seen)

    def _search(self, query: dict[str, list[str]], seen: Seen) -> None:
        q = query.get("q", [""])[0]
        ids = self.fake.search_results(q, query.get("sorts", [None])[0])
        count = int(query.get("count", ["10000"])[0])
        if self.fake.page_size:
            count = min(count, self.fake.page_size)
        start = int(query.get("cursor", ["0"])[0] or 0)
        page = ids[start : start + count]
        answer: dict[str, Any] = {
            "items": [{"identifier": i} for i in page],
            "count": len(page),
            "total": len(ids),
        }
        if start + count < len(ids):
            answer["cursor"] = str(start + count)
        self._json(answer, seen)

    def _redirect(self, identifier: str, name: str | None, seen: Seen) -> None:
        item = self.fake.items.get(identifier)
        if item is None or name not in item.files:
            self._send(404, b"no such file", seen=seen)
            return
        location = f"http://{self.fake.host}/data/{quote(identifier)}/{quote(name)}"
        self._send(302, b"", headers={"Location": location}, seen=seen)

    def _data(self, identifier: str, name: str | None, seen: Seen) -> None:
        item = self.fake.items.get(identifier)
        if item is None or name not in item.files:
            self._send(404, b"no such file", seen=seen)
            return
        data = item.files[name]
        status, body, headers = self._ranged(data)
        self._send(status, body, "text/plain; charset=utf-8", headers, seen=seen)

    def _ranged(self, data: bytes) -> tuple[int, bytes, dict[str, str]]:
        header = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
        headers = {"Accept-Ranges": "bytes"}
        if self.fake.etags:
            etag = headers["ETag"] = f'"{hashlib.md5(data).hexdigest()[:16]}"'
            if self.headers.get("If-None-Match") == etag:
                return 304, b"", headers
            if self.headers.get("If-Range") not in (None, etag):
                match = None  # the client's partial is of another version: send the whole file
        if not match:
            return 200, data, headers
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(data) - 1
        if start >= len(data):
            return 416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"}
        end = min(end, len(data) - 1)
        return 206, data[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}

    # --- faults ---

    def _apply_fault(self, fault: Fault, route: str, identifier, name, query) -> bool:
        """Answer with the fault; False when the normal answer should follow (a delay only)."""
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._send(fault.status, b"<html>Service Unavailable</html>", "text/html", headers)
            return True
        if fault.kind == "malformed":
            self._send(200, b'{"items": [{"identifier": "trunc', "application/json")
            return True
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return False
        # The remaining faults cut a body short, so they need the body first.
        if route == "data":
            item = self.fake.items[identifier]
            status, body, headers = self._ranged(item.files[name])
        elif route == "metadata":
            status, headers = 200, {}
            body = json.dumps(self.fake.metadata_json(identifier)).encode()
        else:
            status, headers = 200, {}
            body = json.dumps({"items": [], "count": 0, "total": 0}).encode()
        self.send_response(status)
        if fault.kind != "no_length":
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if fault.kind == "no_length":  # the whole body, ended only by closing the connection
            self.wfile.write(body)
            return True
        if fault.kind == "drip":
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(fault.delay)
            return True
        cut = max(1, len(body) * 2 // 3)
        self.wfile.write(body[:cut])
        self.wfile.flush()
        if fault.kind == "slow_body":
            time.sleep(fault.delay)
            return True
        time.sleep(0.2)  # let the first part reach the client before the connection goes
        if fault.kind == "reset":
            # SO_LINGER 0 turns close() into a TCP RST: "connection reset by peer" mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:  # short: a clean close with fewer bytes than Content-Length promised
            self.connection.shutdown(socket.SHUT_WR)
        return True


# --- helpers for driving the download stage against the fake ---

# Small waits so a fault test costs milliseconds; a timeout well above a loaded machine's latency.
FAST_RUNTIME = {"concurrency": 2, "retries": 2, "backoff_s": 0.01, "timeout_s": 3.0}


def remote_settings(fake: FakeArchive, **overrides: Any) -> dict[str, Any]:
    """The search rule's params (rules/common.smk archive_search_settings) aimed at `fake`."""
    settings = {
        "source": "remote",
        "base_url": fake.url,
        "query": "*:*",
        "sort": "identifier asc",
        "max_items": 100,
        "local_dir": None,
        "file_preference": ["*_djvu.txt", "*.txt"],
    }
    settings.update(overrides)
    return settings


def write_ia_folder(
    root: Path, items: dict[str, dict[str, bytes]], meta: dict[str, dict] | None = None
) -> Path:
    """A folder in `ia download` layout: `<root>/<identifier>/<files>` plus `<identifier>_meta.xml`."""
    for identifier, files in items.items():
        folder = root / identifier
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        fields = (meta or {}).get(identifier)
        if fields is not None:
            xml = ET.Element("metadata")
            ET.SubElement(xml, "identifier").text = identifier
            for key, value in fields.items():
                for v in value if isinstance(value, list) else [value]:
                    ET.SubElement(xml, key).text = v
            ET.ElementTree(xml).write(
                folder / f"{identifier}_meta.xml", encoding="utf-8", xml_declaration=True
            )
    return root


@pytest.fixture
def fake_archive() -> Iterator[FakeArchive]:
    """A running fake archive.org (empty: add items with add_item / load_folder)."""
    with FakeArchive() as fake:
        yield fake
