"""Download stage: search archive.org, pick each item's text file, download it md5-checked and cached.

Two entry points, one per rule:

- `search(settings, out_path)` writes `results/corpus/items.parquet`: one row per unique item that has a
  text file matching `file_preference`. `source: remote` asks the scrape API through the real
  `internetarchive` client; `source: local` reads a folder in `ia download` layout.
- `download(items_path, out_path, cache_dir, max_file_mb)` writes `results/corpus/downloads.parquet` and
  fills `resources/archive/{identifier}/{file_name}`. A cached file whose md5 matches is not fetched again.

What the `internetarchive` client does not do, this module does (see FACTS.md): md5 checks of fresh
downloads, retries on the data nodes, resume without ever writing a partial file under its final name,
and refusing names from remote metadata that would write outside the download folder.

Retries come in two layers that never multiply: HTTP 429/5xx are retried inside the session by a
urllib3 `Retry` (honouring Retry-After); broken connections, timeouts and malformed JSON are retried
here. Both are bounded by `archive.retries` and wait `archive.backoff_s`, doubling each time.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from archive_encoders.io import write_parquet

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://archive.org"
DEFAULT_PREFERENCE = ("*_djvu.txt", "*.txt")

ITEM_SCHEMA = {
    "identifier": pl.String,
    "title": pl.String,
    "creator": pl.String,
    "date": pl.String,
    "language": pl.List(pl.String),
    "collection": pl.List(pl.String),
    "licenseurl": pl.String,
    "file_name": pl.String,
    "file_size": pl.Int64,
    "file_md5": pl.String,
    "file_format": pl.String,
}
DOWNLOAD_SCHEMA = {
    "identifier": pl.String,
    "path": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "bytes": pl.Int64,
    "md5": pl.String,
}

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_RETRY_AFTER_S = 120.0  # a server may ask for hours; waiting that long in a job is never right
MAX_BACKOFF_S = 60.0
CHUNK_BYTES = 1 << 16
MIB = 1024 * 1024

# archive.org identifiers are letters, digits, '.', '_' and '-' (at most 100 characters); a little
# slack for mirrors, none for anything that could name another folder.
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
_MD5_RE = re.compile(r"[0-9a-f]{32}")
# Errors after which the same request may well succeed: the connection, not the server's answer.
_TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# A body that is not the JSON promised (truncated, HTML error page, wrong shape).
_MALFORMED_ERRORS = (
    json.JSONDecodeError,
    requests.exceptions.JSONDecodeError,
    AttributeError,
    KeyError,
    TypeError,
)


class ArchiveError(RuntimeError):
    """The stage cannot produce its output; the message says why and what to check."""


class UnsafePathError(ValueError):
    """A name from remote metadata that would write outside the download folder."""


@dataclass(frozen=True)
class Runtime:
    """Operational knobs read from config["archive"]; they never change what is downloaded."""

    concurrency: int = 4
    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 60.0

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> Runtime:
        cfg = cfg or {}
        defaults = cls()
        return cls(
            concurrency=max(1, int(cfg.get("concurrency") or defaults.concurrency)),
            retries=max(0, int(cfg.get("retries", defaults.retries))),
            backoff_s=max(0.0, float(cfg.get("backoff_s", defaults.backoff_s))),
            timeout_s=float(cfg.get("timeout_s") or defaults.timeout_s),
        )

    def backoff(self, attempt: int) -> float:
        """Wait before retry number `attempt` (1-based): backoff_s, doubling each time."""
        return min(MAX_BACKOFF_S, self.backoff_s * 2 ** max(0, attempt - 1))


# --- path safety -------------------------------------------------------------------------------------


def identifier_problem(identifier: Any) -> str | None:
    """Why `identifier` cannot name a folder under the download root, or None when it can."""
    if not isinstance(identifier, str) or not identifier:
        return "empty or not a string"
    if "\x00" in identifier:
        return "contains a NUL byte"
    if "/" in identifier or "\\" in identifier:
        return "contains a path separator"
    if identifier in (".", ".."):
        return "is a relative path component"
    if not _IDENTIFIER_RE.fullmatch(identifier):
        return "has characters outside [A-Za-z0-9._-]"
    return None


def file_name_problem(name: Any) -> str | None:
    """Why `name` (a file name inside an item, '/'-separated) is unsafe, or None when it is safe."""
    if not isinstance(name, str) or not name:
        return "empty or not a string"
    if "\x00" in name:
        return "contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "contains a control character"
    if name.startswith("/"):
        return "is an absolute path"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' path component"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def safe_target(root: str | os.PathLike, identifier: str, file_name: str) -> Path:
    """`root/identifier/file_name`, or UnsafePathError when it could resolve outside `root`.

    Names are checked lexically first, then the resolved path (symlinks followed) must stay inside the
    resolved root, so a planted symlink cannot redirect a write either.
    """
    problem = identifier_problem(identifier)
    if problem:
        raise UnsafePathError(f"identifier {identifier!r} {problem}")
    problem = file_name_problem(file_name)
    if problem:
        raise UnsafePathError(f"file name {file_name!r} {problem}")
    root = Path(root)
    target = root / identifier / PurePosixPath(file_name)
    real_root = root.resolve()
    if not _inside(target.resolve(), real_root):
        raise UnsafePathError(f"{identifier}/{file_name} resolves outside {root} (symlink?)")
    return target


# --- metadata normalisation ---------------------------------------------------------------------------


def as_list(value: Any) -> list[str]:
    """A metadata field that archive.org gives as a string or a list, as a clean list of strings."""
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for v in values:
        if isinstance(v, (list, tuple, dict)) or v is None:
            continue
        text = str(v).strip()
        if text and text not in out:
            out.append(text)
    return out


def as_text(value: Any) -> str | None:
    """A field that may come as a list (several creators, titles) as one string, '; '-joined."""
    return "; ".join(as_list(value)) or None


def _as_int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _as_md5(value: Any) -> str | None:
    text = str(value).strip().lower() if value is not None else ""
    return text if _MD5_RE.fullmatch(text) else None


def pick_file(files: Iterable[Mapping[str, Any]], preference: Iterable[str]) -> tuple[dict | None, str]:
    """The item's text file: the first glob in `preference` that matches a safe file name.

    Within one glob the shallowest, then alphabetically first, name wins, so the choice is stable.
    Returns (file, "") or (None, reason).
    """
    files = [dict(f) for f in files if isinstance(f, Mapping) and isinstance(f.get("name"), str)]
    preference = list(preference)
    unsafe: list[str] = []
    for pattern in preference:
        matches = []
        for f in files:
            if not fnmatch.fnmatchcase(f["name"], pattern):
                continue
            problem = file_name_problem(f["name"])
            if problem:
                unsafe.append(f"{f['name']!r} {problem}")
            else:
                matches.append(f)
        if matches:
            return min(matches, key=lambda f: (f["name"].count("/"), f["name"])), ""
    if unsafe:
        return None, "unsafe file name: " + "; ".join(sorted(set(unsafe)))
    return None, f"no text file matching {preference}"


def file_md5(path: str | os.PathLike) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _item_row(identifier: str, metadata: Mapping[str, Any], chosen: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "title": as_text(metadata.get("title")),
        "creator": as_text(metadata.get("creator")),
        "date": as_text(metadata.get("date")),
        "language": as_list(metadata.get("language")),
        "collection": as_list(metadata.get("collection")),
        "licenseurl": as_text(metadata.get("licenseurl")),
        "file_name": chosen["name"],
        "file_size": _as_int(chosen.get("size")),
        "file_md5": _as_md5(chosen.get("md5")),
        "file_format": as_text(chosen.get("format")),
    }


def _display(path: str | os.PathLike) -> str:
    """A path for logs and outputs: relative to the working directory whenever it lies inside it."""
    path = Path(path)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return path.relative_to(Path.cwd()).as_posix()
    return path.as_posix()


# --- credentials and logging --------------------------------------------------------------------------


class RedactFilter(logging.Filter):
    """Replaces known secrets in log records (message, args, traceback) with '***'."""

    def __init__(self) -> None:
        super().__init__("archive_encoders.redact")
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_REDACT = RedactFilter()
_REDACT_LOCK = threading.Lock()


def protect_secrets(*secrets: str | None) -> None:
    """Defence in depth: no handler of the root logger may print these strings (IA keys, cookies).

    Filters sit on handlers, not loggers, because a logger's filters skip records from its children.
    """
    with _REDACT_LOCK:
        _REDACT.secrets.update(s for s in secrets if isinstance(s, str) and len(s) >= 4)
        handlers = [*logging.getLogger().handlers, logging.lastResort]
        for handler in handlers:
            if handler is not None and _REDACT not in handler.filters:
                handler.addFilter(_REDACT)


def _credentials_allowed(scheme: str, host: str) -> bool:
    """A user's IA keys (ia.ini or IA_* env) go to archive.org over https only: never in clear text,
    never to a mirror or a test server."""
    host = host.lower()
    return scheme == "https" and (host == "archive.org" or host.endswith(".archive.org"))


class _Retry(Retry):
    """urllib3 Retry with the configured backoff from the first retry on, a capped Retry-After that
    tolerates junk, and a log line per retry (urllib3 logs those at DEBUG only)."""

    def get_backoff_time(self) -> float:
        errors = len(self.history)
        if errors == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (errors - 1)))

    def get_retry_after(self, response) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None

    def sleep(self, response=None) -> None:
        wait = self.get_retry_after(response) if (self.respect_retry_after_header and response) else None
        source = "Retry-After" if wait else "backoff"
        wait = wait or self.get_backoff_time()
        last = self.history[-1] if self.history else None
        if last is not None:
            allowed = len(self.history) + (self.status or 0)
            log.warning(
                "HTTP %s for %s; retry %d of %d in %.2f s (%s)",
                last.status,
                last.url,
                len(self.history),
                allowed,
                wait,
                source,
            )
        if wait > 0:
            time.sleep(wait)


def _retry_policy(runtime: Runtime) -> Retry:
    # Status codes only: connection and read errors are retried by this module, so the two layers
    # never multiply. raise_on_status turns an exhausted budget into requests' RetryError.
    return _Retry(
        total=runtime.retries,
        connect=False,  # False: re-raise the original error (ReadTimeout...), which this module retries
        read=False,
        other=0,
        status=runtime.retries,
        redirect=None,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD", "POST"}),
        backoff_factor=runtime.backoff_s,
        backoff_max=MAX_BACKOFF_S,
        retry_after_max=MAX_RETRY_AFTER_S,
        respect_retry_after_header=True,
        raise_on_status=True,
    )


def make_session(base_url: str, runtime: Runtime):
    """An `internetarchive.ArchiveSession` aimed at `base_url`, with this module's retry policy.

    https://archive.org: the user's ia.ini / IA_ACCESS_KEY_ID+IA_SECRET_ACCESS_KEY are honoured
    (restricted items need them) and registered with the log redaction filter. Any other base URL (a
    mirror, plain http, the tests' fake): no config file is read and no keys are sent. The client cannot
    take a host in its config (it appends '.archive.org'), so the host is set after construction, as
    FACTS.md describes.
    """
    from internetarchive import ArchiveSession

    parts = urlsplit(base_url or DEFAULT_BASE_URL)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ArchiveError(f"archive.base_url: {base_url!r} is not an http(s) URL")
    secure = parts.scheme == "https"
    trusted = _credentials_allowed(parts.scheme, parts.hostname or "")
    try:
        session = ArchiveSession(
            config={"general": {"secure": secure}},
            config_file="" if trusted else "/dev/null",
        )
    except ValueError as err:  # e.g. only one of the two IA_* variables is set
        raise ArchiveError(f"archive.org credentials: {err}") from None
    protect_secrets(
        session.access_key,
        session.secret_key,
        *(str(v) for v in session.config.get("cookies", {}).values() if v),
    )
    if not trusted:
        session.access_key = None
        session.secret_key = None
        session.cookies.clear()
        session.headers["User-Agent"] = session._get_user_agent_string()  # it embeds the access key
    session.host = parts.netloc
    session.protocol = f"{parts.scheme}:"
    retry = _retry_policy(runtime)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)  # data nodes (ia8xxxx.us.archive.org) included
    session.mount_http_adapter(max_retries=retry)  # replaces the client's own archive.org adapter
    session.retry_policy = retry
    return session


class _Sessions:
    """One session per worker thread (requests does not promise a Session is thread-safe)."""

    def __init__(self, base_url: str, runtime: Runtime):
        self.base_url, self.runtime = base_url, runtime
        self._local = threading.local()

    def get(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = make_session(self.base_url, self.runtime)
        return session


def _raise_for_status(response, *args, **kwargs):
    # The client's scrape loop never looks at the status; a 4xx would surface as "malformed JSON".
    response.raise_for_status()


def _timeout(runtime: Runtime) -> tuple[float, float]:
    return (runtime.timeout_s, runtime.timeout_s)


# --- search -------------------------------------------------------------------------------------------


def search(
    settings: Mapping[str, Any], out_path: str | os.PathLike, runtime: Mapping[str, Any] | None = None
) -> pl.DataFrame:
    """Find the items and their text files; write items.parquet (columns: ITEM_SCHEMA).

    settings: the rule's params (source, base_url, query, sort, max_items, local_dir, file_preference).
    runtime: config["archive"], read only for concurrency, retries, backoff_s and timeout_s.
    """
    rt = Runtime.from_mapping(runtime)
    if settings.get("source", "remote") == "local":
        rows = _scan_local(settings)
    else:
        rows = _search_remote(settings, rt)
    if not rows:
        raise ArchiveError(
            "search found no usable item (every result was skipped: see the reasons above); "
            "check archive.query, archive.file_preference and archive.local_dir"
        )
    frame = pl.DataFrame(rows, schema=ITEM_SCHEMA)
    write_parquet(frame, out_path)
    log.info("wrote %s: %d items", _display(out_path), frame.height)
    return frame


def _search_remote(settings: Mapping[str, Any], rt: Runtime) -> list[dict[str, Any]]:
    base_url = settings.get("base_url") or DEFAULT_BASE_URL
    query = settings.get("query")
    if not query:
        raise ArchiveError("archive.query: required when archive.source is remote")
    max_items = int(settings.get("max_items") or 100)
    preference = list(settings.get("file_preference") or DEFAULT_PREFERENCE)
    sessions = _Sessions(base_url, rt)
    identifiers = _search_identifiers(sessions.get(), base_url, query, settings.get("sort"), max_items, rt)
    log.info("search %r at %s: %d unique identifiers", query, base_url, len(identifiers))

    def describe(identifier: str) -> tuple[dict | None, str]:
        return _describe_item(sessions.get(), identifier, preference, rt)

    rows: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=rt.concurrency) as pool:
        for identifier, (row, reason) in zip(identifiers, pool.map(describe, identifiers), strict=True):
            if row is None:
                log.warning("skip item %r: %s", identifier, reason)
                reasons[re.split(r"[:(]", reason, maxsplit=1)[0].strip()] += 1
            else:
                rows.append(row)
    log.info(
        "kept %d of %d items%s",
        len(rows),
        len(identifiers),
        f"; skipped: {dict(reasons)}" if reasons else "",
    )
    return rows


def _search_identifiers(
    session, base_url: str, query: str, sort: str | None, max_items: int, rt: Runtime
) -> list[str]:
    """Up to `max_items` unique identifiers, in the server's order, through the client's scrape API.

    The client's result generator cannot be resumed after an error, so a malformed page or a broken
    connection restarts the search (it is one request per 10,000 results); HTTP 429/5xx were already
    retried inside the session, and an answer like {"error": ...} (a bad query) fails at once.
    """
    # The scrape API takes 100..10000 results per page; more than max_items is never read.
    count = min(10000, max(100, max_items))
    last_problem = ""
    for attempt in range(rt.retries + 1):
        if attempt:
            wait = rt.backoff(attempt)
            log.warning(
                "search failed (%s); retry %d of %d in %.2f s", last_problem, attempt, rt.retries, wait
            )
            time.sleep(wait)
        identifiers: list[str] = []
        seen: set[str] = set()
        try:
            results = session.search_items(
                query,
                fields=["identifier"],
                sorts=[sort] if sort else None,
                params={"count": count},
                request_kwargs={"timeout": _timeout(rt), "hooks": {"response": [_raise_for_status]}},
                max_retries=session.retry_policy,
            )
            for result in results:
                identifier = result.get("identifier") if isinstance(result, dict) else None
                if isinstance(result, dict) and "error" in result and identifier is None:
                    continue  # the client yields the error dict, then raises ValueError for it
                if not isinstance(identifier, str):
                    log.warning("search result without an identifier ignored: %.200r", result)
                    continue
                if identifier in seen:
                    log.warning("search returned %r more than once; keeping the first", identifier)
                    continue
                seen.add(identifier)
                identifiers.append(identifier)
                if len(identifiers) >= max_items:
                    break
            return identifiers
        except requests.exceptions.RetryError as err:
            raise ArchiveError(
                f"search at {base_url} failed: the server kept answering with errors after "
                f"{rt.retries} retries ({_describe(err)})"
            ) from None
        except requests.exceptions.HTTPError as err:
            raise ArchiveError(f"search at {base_url} failed: {_describe(err)}") from None
        except _MALFORMED_ERRORS as err:
            last_problem = f"malformed response ({type(err).__name__}: {_short(err, 120)})"
        except _TRANSPORT_ERRORS as err:
            last_problem = _describe(err)
        except requests.exceptions.RequestException as err:  # redirect loop, invalid URL...
            raise ArchiveError(f"search at {base_url} failed: {_describe(err)}") from None
        except ValueError as err:  # the API's own {"error": ...}: a bad query, bad keys
            raise ArchiveError(f"search at {base_url} was rejected: {err}") from None
    raise ArchiveError(
        f"search at {base_url} failed after {rt.retries + 1} attempts: {last_problem}. "
        "Check archive.base_url and the network, or raise archive.retries / archive.timeout_s."
    )


def _short(err: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(err: BaseException) -> str:
    """A one-line reason for a log or downloads.parquet, not a nested urllib3 repr."""
    text = " ".join(str(err).split())
    kind = type(err).__name__
    for pattern, summary in (
        (r"too many (\d{3}) error responses", "HTTP {0}, retries exhausted"),
        (r"(\d{3}) (?:Client|Server) Error", "HTTP {0}"),
        (r"[Rr]ead timed out", "read timed out"),
        (r"timed out", "timed out"),
        (
            r"IncompleteRead\((\d+) bytes read, (\d+) more expected",
            "body cut short ({0} bytes read, {1} missing)",
        ),
        (r"[Cc]onnection reset", "connection reset by the server"),
        (r"[Cc]onnection refused", "connection refused"),
        (r"Connection broken", "connection broken mid-body"),
    ):
        match = re.search(pattern, text)
        if match:
            return f"{kind}: {summary.format(*match.groups())}"
    return f"{kind}: {_short(text, 160)}"


def _fetch_metadata(session, identifier: str, rt: Runtime) -> tuple[dict | None, str]:
    """The item's metadata dict via the client's get_item, retried on broken/malformed answers."""
    problem = ""
    for attempt in range(rt.retries + 1):
        if attempt:
            wait = rt.backoff(attempt)
            log.warning(
                "metadata for %s: %s; retry %d of %d in %.2f s",
                identifier,
                problem,
                attempt,
                rt.retries,
                wait,
            )
            time.sleep(wait)
        try:
            item = session.get_item(identifier, request_kwargs={"timeout": _timeout(rt)})
            metadata = item.item_metadata
            if not isinstance(metadata, dict):
                raise TypeError(f"metadata is a {type(metadata).__name__}, not an object")
            return metadata, ""
        except (requests.exceptions.RetryError, requests.exceptions.HTTPError) as err:
            return None, f"metadata request failed ({_describe(err)})"
        except _MALFORMED_ERRORS as err:
            problem = f"malformed metadata JSON ({type(err).__name__}: {_short(err, 120)})"
        except _TRANSPORT_ERRORS as err:
            problem = f"metadata request failed ({_describe(err)})"
        except requests.exceptions.RequestException as err:  # redirect loop, invalid URL...
            return None, f"metadata request failed ({_describe(err)})"
    return None, f"{problem}; gave up after {rt.retries + 1} attempts"


def _describe_item(session, identifier: str, preference: list[str], rt: Runtime) -> tuple[dict | None, str]:
    problem = identifier_problem(identifier)
    if problem:
        return None, f"unsafe identifier: {problem}"
    metadata, reason = _fetch_metadata(session, identifier, rt)
    if metadata is None:
        return None, reason
    if not metadata:
        return None, "no metadata: the item is missing or dark ({} from /metadata)"
    if metadata.get("is_dark"):
        return None, "dark item"
    fields = metadata.get("metadata")
    if not isinstance(fields, dict):
        return None, "malformed metadata: no 'metadata' object"
    if fields.get("identifier") not in (None, identifier):
        return None, f"metadata is for another identifier ({fields.get('identifier')!r})"
    files = metadata.get("files")
    chosen, reason = pick_file(files if isinstance(files, list) else [], preference)
    if chosen is None:
        return None, reason
    row = _item_row(identifier, fields, chosen)
    if row["file_md5"] is None:
        log.warning(
            "%s: %s has no valid md5 in metadata; it cannot be verified", identifier, row["file_name"]
        )
    return row, ""


# --- local source (a folder in `ia download` layout) ---------------------------------------------------


def _read_meta_xml(path: Path) -> dict[str, Any]:
    """`<identifier>_meta.xml`: repeated elements (creator, language, collection) become lists."""
    if not path.is_file():
        return {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        log.warning("%s: unreadable metadata (%s); using the folder name only", _display(path), err)
        return {}
    out: dict[str, Any] = {}
    for child in root:
        text = (child.text or "").strip()
        if not text:
            continue
        if child.tag in out:
            previous = out[child.tag]
            out[child.tag] = [*previous, text] if isinstance(previous, list) else [previous, text]
        else:
            out[child.tag] = text
    return out


def _read_files_xml(path: Path) -> dict[str, dict[str, Any]]:
    """`<identifier>_files.xml`: file name -> {md5, size, format} as listed by archive.org."""
    if not path.is_file():
        return {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        log.warning("%s: unreadable file list (%s); computing md5 and size instead", _display(path), err)
        return {}
    listed = {}
    for node in root.iter("file"):
        name = node.get("name")
        if name:
            listed[name] = {
                tag: (node.findtext(tag) or "").strip() or None for tag in ("md5", "size", "format")
            }
    return listed


def _scan_local(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    local_dir = settings.get("local_dir")
    if not local_dir or not Path(local_dir).is_dir():
        raise ArchiveError(f"archive.local_dir: folder {local_dir!r} does not exist")
    root = Path(local_dir)
    real_root = root.resolve()
    preference = list(settings.get("file_preference") or DEFAULT_PREFERENCE)
    max_items = int(settings.get("max_items") or 100)
    if settings.get("query"):
        log.info("archive.query is not used for a local source; every item folder is read")
    rows: list[dict[str, Any]] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if len(rows) >= max_items:
            log.info("stopping at max_items=%d", max_items)
            break
        identifier = entry.name
        problem = identifier_problem(identifier)
        if problem:
            log.warning("skip folder %r: unsafe identifier: %s", identifier, problem)
            continue
        if not _inside(entry.resolve(), real_root):
            log.warning("skip item %s: its folder resolves outside local_dir (symlink)", identifier)
            continue
        listed = _read_files_xml(entry / f"{identifier}_files.xml")
        on_disk = []
        for dirpath, dirnames, filenames in os.walk(entry):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                name = path.relative_to(entry).as_posix()
                if not _inside(path.resolve(), real_root):
                    log.warning("%s: ignoring %r, a symlink that leads outside local_dir", identifier, name)
                    continue
                info = listed.get(name, {})
                on_disk.append({"name": name, "format": info.get("format"), "md5": info.get("md5")})
        chosen, reason = pick_file(on_disk, preference)
        if chosen is None:
            log.warning("skip item %s: %s", identifier, reason)
            continue
        path = entry / PurePosixPath(chosen["name"])
        chosen["size"] = path.stat().st_size
        # md5 from _files.xml is archive.org's; the download step checks the local copy against it.
        chosen["md5"] = _as_md5(chosen.get("md5")) or file_md5(path)
        fields = _read_meta_xml(entry / f"{identifier}_meta.xml")
        rows.append(_item_row(identifier, fields, chosen))
    log.info("local archive %s: %d items", _display(root), len(rows))
    return rows


# --- download -----------------------------------------------------------------------------------------


def download(
    items_path: str | os.PathLike,
    out_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    max_file_mb: float,
    settings: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Fetch each item's text file into `cache_dir/{identifier}/{file_name}`; write downloads.parquet.

    settings: config["archive"] (source, base_url, local_dir). runtime: the operational knobs, by
    default read from `settings`. For a local source nothing is copied: the files are verified in
    place and `path` is relative to local_dir's parent.
    """
    settings = settings or {}
    rt = Runtime.from_mapping(runtime if runtime is not None else settings)
    items = pl.read_parquet(items_path)
    max_bytes = int(float(max_file_mb) * MIB)
    rows = items.select("identifier", "file_name", "file_size", "file_md5").to_dicts()
    if settings.get("source", "remote") == "local":
        local_dir = settings.get("local_dir")
        if not local_dir or not Path(local_dir).is_dir():
            raise ArchiveError(f"archive.local_dir: folder {local_dir!r} does not exist")
        work = lambda row: _verify_local(row, Path(local_dir), max_bytes)  # noqa: E731
        label = f"verify {_display(local_dir)}"
    else:
        sessions = _Sessions(settings.get("base_url") or DEFAULT_BASE_URL, rt)
        root = Path(cache_dir)
        root.mkdir(parents=True, exist_ok=True)
        work = lambda row: _download_one(sessions, row, root, max_bytes, rt)  # noqa: E731
        label = "download"
    results = _run_pool(rows, work, rt.concurrency, label)
    frame = pl.DataFrame(results, schema=DOWNLOAD_SCHEMA)
    ok = frame.filter(pl.col("status") == "ok")
    log.info(
        "%d of %d files ok (%.1f MiB); %d skipped",
        ok.height,
        frame.height,
        (ok["bytes"].sum() or 0) / MIB,
        frame.height - ok.height,
    )
    if frame.height and ok.height == 0:
        raise ArchiveError("no file could be downloaded (every item was skipped: see the reasons above)")
    write_parquet(frame, out_path)
    log.info("wrote %s", _display(out_path))
    return frame


def downloaded_file(path: str, settings: Mapping[str, Any]) -> Path:
    """Where a downloads.parquet `path` lies: relative to the working directory, or for a local source
    to local_dir's parent (docs/ARCHITECTURE.md), so results never hold an absolute path."""
    if settings.get("source", "remote") == "local":
        return Path(settings["local_dir"]).parent / path
    return Path(path)


def _run_pool(rows: list[dict], work: Callable[[dict], dict], workers: int, label: str) -> list[dict]:
    """Run `work` on every row with a bounded thread pool; results keep the rows' order."""
    results: list[dict | None] = [None] * len(rows)
    # The bar goes to stderr, which log_to points at the rule's log; few updates keep the log short.
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(rows), desc=label, unit="file", file=sys.stderr, mininterval=5, ascii=True) as bar,
    ):
        futures = {pool.submit(work, row): i for i, row in enumerate(rows)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return results  # type: ignore[return-value]


def _ok(identifier: str, path: str, size: int, md5: str) -> dict[str, Any]:
    return {"identifier": identifier, "path": path, "status": "ok", "reason": None, "bytes": size, "md5": md5}


def _skipped(identifier: str, reason: str) -> dict[str, Any]:
    log.warning("skip item %r: %s", identifier, reason)
    return {
        "identifier": identifier,
        "path": None,
        "status": "skipped",
        "reason": reason,
        "bytes": None,
        "md5": None,
    }


def _verify_local(row: dict[str, Any], root: Path, max_bytes: int) -> dict[str, Any]:
    identifier, name = row["identifier"], row["file_name"]
    try:
        path = safe_target(root, identifier, name)
    except UnsafePathError as err:
        return _skipped(identifier, f"unsafe path: {err}")
    if not path.is_file():
        return _skipped(identifier, f"{identifier}/{name} is missing from local_dir")
    size = path.stat().st_size
    if size > max_bytes:
        return _skipped(identifier, f"file is {size / MIB:.2f} MiB, over max_file_mb={max_bytes / MIB:.4g}")
    if size == 0:
        return _skipped(identifier, "empty text file (0 bytes)")
    md5 = file_md5(path)
    if row.get("file_md5") and md5 != row["file_md5"]:
        return _skipped(identifier, f"md5 mismatch: expected {row['file_md5']}, file has {md5}")
    _note_encoding(identifier, path)
    return _ok(identifier, os.path.relpath(path, root.parent).replace(os.sep, "/"), size, md5)


def _note_encoding(identifier: str, path: Path) -> None:
    # Decoding is the clean stage's job; the bytes are kept exactly as served. Say so in the log.
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not just a multi-byte character cut at the sample's end
            log.info("%s: not valid UTF-8 (kept as bytes; decoding is left to the clean stage)", identifier)


def _download_one(sessions: _Sessions, row: dict[str, Any], root: Path, max_bytes: int, rt: Runtime) -> dict:
    identifier, name = row["identifier"], row["file_name"]
    size, md5 = row.get("file_size"), row.get("file_md5")
    try:  # items.parquet is checked again: it is an input file, not a promise
        target = safe_target(root, identifier, name)
    except UnsafePathError as err:
        return _skipped(identifier, f"unsafe path: {err}")
    shown = _display(target)
    if size is not None and size > max_bytes:
        return _skipped(
            identifier, f"file is {size / MIB:.2f} MiB in metadata, over max_file_mb={max_bytes / MIB:.4g}"
        )
    if size == 0:
        return _skipped(identifier, "empty text file (0 bytes in metadata)")
    if target.is_file():
        cached = file_md5(target)
        if cached == md5 or (md5 is None and target.stat().st_size == size):
            log.debug("%s: cached %s", identifier, shown)
            return _ok(identifier, shown, target.stat().st_size, cached)
        # A cached file that no longer matches the metadata must not stay under its final name.
        log.info("%s: cached %s does not match the metadata md5; downloading again", identifier, shown)
        target.unlink()
    session = sessions.get()
    item = session.get_item(identifier, item_metadata={"metadata": {"identifier": identifier}})
    remote = item.get_file(name)  # the client builds the /download/<id>/<name> URL and the auth
    status, detail = _fetch(session, remote.url, remote.auth, target, size, md5, max_bytes, rt, identifier)
    if status != "ok":
        _prune_empty(target.parent, root)
        return _skipped(identifier, detail)
    _note_encoding(identifier, target)
    return _ok(identifier, shown, target.stat().st_size, detail)


def _prune_empty(folder: Path, root: Path) -> None:
    """Remove the now-empty folders a skipped item left (a kept .part keeps its folder)."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _content_range_start(response) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _fetch(
    session,
    url: str,
    auth,
    target: Path,
    size: int | None,
    md5: str | None,
    max_bytes: int,
    rt: Runtime,
    identifier: str,
) -> tuple[str, str]:
    """Stream `url` into `<target>.part`, resuming with Range; verify; rename into place.

    Returns ("ok", md5) or ("skipped", reason). The stable `.part` name (not a random temporary as in
    archive_encoders.io) is what lets a later attempt or a rerun resume; the final name only ever
    appears through os.replace of a verified file.
    """
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(part.parent.resolve(), target.parent.resolve()) or part.is_symlink():
        return "skipped", f"unsafe path: {part.name} is a symlink"
    failures = 0  # broken connections and truncated bodies, bounded by rt.retries
    restarted = False  # at most one restart from byte 0 after a resumed file fails its md5
    resumed = False
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if offset and size is not None and offset >= size:
            # Nothing left to ask for: check the partial as it is instead of requesting an empty range.
            resumed = True
        else:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                outcome = _stream(session, url, auth, part, offset, headers, max_bytes, rt)
            except requests.exceptions.RetryError as err:
                return "skipped", f"HTTP error after {rt.retries} retries ({_describe(err)})"
            except _TRANSPORT_ERRORS as err:
                failures += 1
                got = part.stat().st_size if part.exists() else 0
                if failures > rt.retries:
                    # The .part stays: a rerun resumes from it.
                    return "skipped", (
                        f"download failed after {failures} attempts "
                        f"({_describe(err)}); kept {got} bytes in {part.name} for a later resume"
                    )
                wait = rt.backoff(failures)
                log.warning(
                    "%s: %s after %d bytes; resuming, retry %d of %d in %.2f s",
                    identifier,
                    _describe(err),
                    got,
                    failures,
                    rt.retries,
                    wait,
                )
                time.sleep(wait)
                continue
            except requests.exceptions.RequestException as err:  # redirect loop, invalid URL...
                return "skipped", f"request failed ({_describe(err)})"
            if outcome is not None:
                part.unlink(missing_ok=True)
                return "skipped", outcome
            resumed = resumed or offset > 0
        got_size = part.stat().st_size
        if size is not None and got_size < size:
            # The server closed early without an error (no Content-Length to hold it to).
            failures += 1
            if failures > rt.retries:
                return (
                    "skipped",
                    f"download stayed short: {got_size} of {size} bytes after {failures} attempts",
                )
            time.sleep(rt.backoff(failures))
            continue
        got_md5 = file_md5(part)
        if md5 is not None and got_md5 != md5:
            part.unlink()
            if resumed and not restarted:
                # The resumed bytes may come from an older version of the file: fetch it whole once.
                log.warning("%s: md5 mismatch after a resumed download; downloading from byte 0", identifier)
                restarted, resumed = True, False
                continue
            # A whole fresh download that disagrees with the metadata will disagree again.
            return "skipped", f"md5 mismatch: metadata says {md5}, downloaded file has {got_md5}"
        if got_size == 0:
            part.unlink()
            return "skipped", "empty text file (0 bytes downloaded)"
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(part, target)
        with contextlib.suppress(OSError):
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if md5 is None:
            log.warning("%s: downloaded without an md5 to check against (%d bytes)", identifier, got_size)
        return "ok", got_md5


def _stream(session, url, auth, part: Path, offset: int, headers, max_bytes: int, rt: Runtime) -> str | None:
    """One GET into `part`. None when the body arrived whole; a reason string for a final failure.

    Transport errors propagate (the caller resumes); bytes already written stay in `part`.
    """
    # cnt=0: like the client's own downloads, do not count as a view on archive.org. identity: the
    # bytes on the wire are the file's, so Range offsets, Content-Length and md5 all mean the same thing.
    headers = {**headers, "Accept-Encoding": "identity"}
    with session.get(
        url, stream=True, timeout=_timeout(rt), headers=headers, auth=auth, params={"cnt": "0"}
    ) as response:
        if response.status_code == 416 and offset:
            # Our partial is not a prefix the server recognises: start again from byte 0.
            part.unlink(missing_ok=True)
            raise requests.exceptions.ConnectionError("416 Range Not Satisfiable for the partial file")
        if response.status_code not in (200, 206):
            return f"HTTP {response.status_code} {response.reason or ''}".strip()
        mode = "ab"
        if response.status_code == 200:
            mode, offset = "wb", 0  # the server ignored the Range: take the whole body
        elif _content_range_start(response) != offset:
            # Another range than asked for cannot be appended: drop the partial, fetch it whole.
            part.unlink(missing_ok=True)
            got = response.headers.get("Content-Range")
            raise requests.exceptions.ConnectionError(f"asked for bytes={offset}-, got Content-Range {got!r}")
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and offset + int(length) > max_bytes:
            total = (offset + int(length)) / MIB
            return f"file is {total:.2f} MiB (Content-Length), over max_file_mb={max_bytes / MIB:.4g}"
        received = offset
        with open(part, mode) as fh:
            for chunk in response.iter_content(CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    return (
                        f"file exceeds max_file_mb={max_bytes / MIB:.4g} while streaming (metadata said less)"
                    )
                fh.write(chunk)
    return None
