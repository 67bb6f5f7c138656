"""The remote source: archive.org (or a compatible server) through the `internetarchive` client.

Search pages through the scrape API (`POST /services/search/v1/scrape`, 100..10,000 results a page,
then the answer's `cursor`) one page per request, so a failure on page 7 of a 60,000-item search
retries page 7, not the whole search; the client's own result generator cannot be resumed after an
error. Metadata comes from the client's `get_metadata`, files through the URL and auth of its `File`.
Every request runs under the one retry policy (retry.py).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import urllib3

from archive_encoders.archive.errors import ArchiveError, SkipItem
from archive_encoders.archive.fetch import FileFetch
from archive_encoders.archive.files import (
    MIB,
    display,
    drop_validators,
    file_md5,
    note_encoding,
    os_problem,
    prune_empty,
    read_validators,
)
from archive_encoders.archive.metadata import item_row, pick_file
from archive_encoders.archive.retry import (
    RETRYABLE,
    AnswerTooLarge,
    AnswerTooSlow,
    HTTPStatusError,
    MalformedResponse,
    describe,
    raise_for_status,
)
from archive_encoders.archive.safety import UnsafePathError, identifier_problem, safe_target
from archive_encoders.archive.session import Runtime, Sessions, checked_base_url, s3_auth
from archive_encoders.archive.source import FileLimits, ok, skipped

log = logging.getLogger(__name__)

SCRAPE_PATH = "/services/search/v1/scrape"
PAGE_MIN, PAGE_MAX = 100, 10_000  # what the scrape API accepts as `count`
# A search page of 10,000 identifiers is ~0.5 MB and the largest item metadata some MB: far more is
# not an answer this stage can use, only memory it would lose.
MAX_ANSWER_BYTES = 16 * MIB
READ_BYTES = 1 << 16


def _read1(response: requests.Response) -> bytes:
    """One read of the raw body, its errors wrapped as requests' iter_content wraps them."""
    try:
        return response.raw.read1(READ_BYTES, decode_content=True)
    except urllib3.exceptions.ProtocolError as err:
        raise requests.exceptions.ChunkedEncodingError(err) from err
    except urllib3.exceptions.DecodeError as err:
        raise requests.exceptions.ContentDecodingError(err) from err
    except urllib3.exceptions.ReadTimeoutError as err:
        raise requests.exceptions.ConnectionError(err) from err


def bounded_json(response: requests.Response, what: str, deadline_s: float) -> Any:
    """The JSON body of a streamed `response`, read up to MAX_ANSWER_BYTES and within `deadline_s` of
    now: AnswerTooLarge / AnswerTooSlow otherwise, MalformedResponse when it is not JSON."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
        size = int(length) / MIB
        raise AnswerTooLarge(f"{what} of {size:.1f} MiB (Content-Length), over {MAX_ANSWER_BYTES // MIB} MiB")
    deadline = time.monotonic() + deadline_s
    body = bytearray()
    while True:
        # read1: one read of the socket at most, so a slow drip meets the deadline check in time
        chunk = _read1(response)
        if not chunk:
            break
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(f"{what} over {MAX_ANSWER_BYTES // MIB} MiB")
        if time.monotonic() > deadline:
            raise AnswerTooSlow(f"{what} still arriving after {deadline_s:g} s ({len(body)} bytes read)")
    try:
        return json.loads(bytes(body))
    except ValueError as err:  # not JSON, or not UTF-8
        raise MalformedResponse(what, err) from err


class RemoteSource:
    """`archive.source: remote`. Files go to `cache_dir/{identifier}/{file_name}`, verified by md5."""

    label = "download"

    def __init__(self, settings: Mapping[str, Any], runtime: Runtime, cache_dir: str | Path | None = None):
        self.settings, self.runtime = settings, runtime
        self.base_url = checked_base_url(settings["base_url"])
        self.cache = Path(cache_dir) if cache_dir is not None else None
        self.policy = runtime.policy()
        self.sessions = Sessions(self.base_url)

    def where(self, path: str) -> Path:
        return Path(path)  # relative to the working directory, like the cache folder

    # --- search ---

    def search(self) -> list[dict[str, Any]]:
        query = self.settings.get("query")
        if not query:
            raise ArchiveError("archive.query: required when archive.source is remote")
        identifiers = self.identifiers(query, self.settings["sort"], int(self.settings["max_items"]))
        log.info("search %r at %s: %d unique identifiers", query, self.base_url, len(identifiers))
        rows: list[dict[str, Any]] = []
        reasons: Counter[str] = Counter()
        with ThreadPoolExecutor(max_workers=self.runtime.concurrency) as pool:
            for identifier, (row, reason) in zip(
                identifiers, pool.map(self.describe, identifiers), strict=True
            ):
                if row is None:
                    log.warning("skip item %r: %s", identifier, reason)
                    reasons[re.split(r"[:(]", reason, maxsplit=1)[0].strip()] += 1
                else:
                    rows.append(row)
        skips = f"; skipped: {dict(reasons)}" if reasons else ""
        log.info("kept %d of %d items%s", len(rows), len(identifiers), skips)
        return rows

    def identifiers(self, query: str, sort: str | None, max_items: int) -> list[str]:
        """Up to `max_items` unique identifiers in the server's order, page after page of the cursor."""
        count = min(PAGE_MAX, max(PAGE_MIN, max_items))
        identifiers: list[str] = []
        seen: set[str] = set()
        cursors: set[str] = set()
        cursor: str | None = None
        page = received = 0
        while True:
            page += 1
            answer = self._page(page, query, sort, count, cursor)
            received += len(answer["items"])
            for result in answer["items"]:
                identifier = result.get("identifier") if isinstance(result, dict) else None
                if not isinstance(identifier, str):
                    log.warning("search result without an identifier ignored: %.200r", result)
                elif identifier in seen:
                    log.warning("search returned %r more than once; keeping the first", identifier)
                else:
                    seen.add(identifier)
                    identifiers.append(identifier)
                    if len(identifiers) >= max_items:
                        log.info("search: stopping at max_items=%d after %d page(s)", max_items, page)
                        return identifiers
            cursor = answer.get("cursor")
            if not cursor:
                self._check_total(answer, page, received)
                return identifiers
            if cursor in cursors:
                raise ArchiveError(f"search at {self.base_url} failed: the cursor {cursor!r} came back twice")
            cursors.add(cursor)
            log.info("search: page %d read, %d unique identifiers so far", page, len(identifiers))

    def _page(self, page: int, query: str, sort: str | None, count: int, cursor: str | None) -> dict:
        """One scrape page under the retry policy, or ArchiveError that says why the search cannot go on."""
        try:
            return self.policy.call(f"search page {page}", self._scrape, query, sort, count, cursor)
        except HTTPStatusError as err:
            if err.transient:
                raise ArchiveError(
                    f"search at {self.base_url} failed: the server kept answering with errors after "
                    f"{self.policy.retries} retries ({err})"
                ) from None
            raise ArchiveError(f"search at {self.base_url} failed: {err}") from None
        except RETRYABLE as err:
            raise ArchiveError(
                f"search at {self.base_url} failed after {self.policy.attempts} attempts: {describe(err)}. "
                "Check archive.base_url and the network, or raise archive.retries / archive.timeout_s."
            ) from None
        except AnswerTooLarge as err:
            raise ArchiveError(f"search at {self.base_url} failed: {err}") from None
        except requests.exceptions.RequestException as err:  # redirect loop, invalid URL...
            raise ArchiveError(f"search at {self.base_url} failed: {describe(err)}") from None

    def _scrape(self, query: str, sort: str | None, count: int, cursor: str | None) -> dict:
        session = self.sessions.get()
        params: dict[str, Any] = {"q": query, "fields": "identifier", "count": count}
        if sort:
            params["sorts"] = sort
        if cursor:
            params["cursor"] = cursor
        url = f"{session.protocol}//{session.host}{SCRAPE_PATH}"
        with session.post(
            url, params=params, auth=s3_auth(session), timeout=self.runtime.timeout, stream=True
        ) as response:
            raise_for_status(response)
            answer = bounded_json(response, "response", self.runtime.deadline_s)
        if isinstance(answer, dict) and answer.get("error"):  # a bad query, bad keys: not worth a retry
            raise ArchiveError(f"search at {self.base_url} was rejected: {answer['error']}")
        if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
            raise MalformedResponse("response", TypeError("no 'items' list in the answer"))
        return answer

    @staticmethod
    def _check_total(answer: dict, pages: int, received: int) -> None:
        total = answer.get("total")
        if isinstance(total, int) and total != received:
            log.warning(
                "search: the server announced %d results but sent %d over %d page(s)", total, received, pages
            )

    # --- metadata ---

    def describe(self, identifier: str) -> tuple[dict | None, str]:
        """(items.parquet row, "") for a usable item, or (None, why not)."""
        problem = identifier_problem(identifier)
        if problem:
            return None, f"unsafe identifier: {problem}"
        try:
            metadata = self.policy.call(f"metadata for {identifier}", self._metadata, identifier)
        except HTTPStatusError as err:
            spent = ", retries exhausted" if err.transient else ""
            return None, f"metadata request failed ({err}{spent})"
        except MalformedResponse as err:
            return None, f"{err}; gave up after {self.policy.attempts} attempts"
        except AnswerTooLarge as err:
            return None, str(err)
        except RETRYABLE as err:
            return (
                None,
                f"metadata request failed ({describe(err)}); gave up after {self.policy.attempts} attempts",
            )
        except requests.exceptions.RequestException as err:  # redirect loop, invalid URL...
            return None, f"metadata request failed ({describe(err)})"
        try:
            row = _usable_item(identifier, metadata, self.settings["file_preference"])
        except SkipItem as err:
            return None, str(err)
        if row["file_md5"] is None:
            log.warning(
                "%s: %s has no valid md5 in metadata; it cannot be verified", identifier, row["file_name"]
            )
        return row, ""

    def _metadata(self, identifier: str) -> dict:
        """The item's /metadata answer: the request the client's get_metadata makes, read with a size
        cap and a deadline (the client reads any answer whole, with only a per-read timeout)."""
        session = self.sessions.get()
        url = f"{session.protocol}//{session.host}/metadata/{identifier}"
        with session.get(url, auth=s3_auth(session), timeout=self.runtime.timeout, stream=True) as response:
            raise_for_status(response)
            metadata = bounded_json(response, "metadata JSON", self.runtime.deadline_s)
        if not isinstance(metadata, dict):
            raise MalformedResponse("metadata JSON", TypeError(f"metadata is a {type(metadata).__name__}"))
        return metadata

    # --- files ---

    def fetch(self, item: Mapping[str, Any], limits: FileLimits) -> dict[str, Any]:
        identifier, name = item["identifier"], item["file_name"]
        size, md5 = item["file_size"], item["file_md5"]
        if self.cache is None:
            raise ArchiveError("a remote source needs a cache folder to download into")
        try:  # items.parquet is checked again: it is an input file, not a promise
            target = safe_target(self.cache, identifier, name)
        except UnsafePathError as err:
            return skipped(identifier, f"unsafe path: {err}")
        try:
            return self._fetch(identifier, name, size, md5, target, limits)
        except OSError as err:  # a name too long, a folder without permission; DiskFull stops the stage
            if isinstance(err, requests.exceptions.RequestException):
                raise
            return skipped(identifier, os_problem(err, target))

    def _fetch(self, identifier, name, size, md5, target: Path, limits: FileLimits) -> dict[str, Any]:
        revalidate = None
        if target.is_file():
            cached = _cached(identifier, target, size, md5)
            if isinstance(cached, dict) and "status" in cached:
                return cached
            revalidate = cached
        session = self.sessions.get()
        item_handle = session.get_item(identifier, item_metadata={"metadata": {"identifier": identifier}})
        remote = item_handle.get_file(name)  # the client builds the /download/<id>/<name> URL and the auth
        fetch = FileFetch(
            session,
            remote.url,
            remote.auth,
            target,
            size,
            md5,
            limits,
            self.runtime.timeout,
            identifier,
            revalidate,
        )
        try:
            digest = fetch.run(self.policy)
        except SkipItem as err:
            if revalidate is not None:  # a cached file the server could not confirm is not kept
                target.unlink(missing_ok=True)
                drop_validators(target)
            prune_empty(target.parent, self.cache)
            return skipped(identifier, str(err))
        note_encoding(identifier, target)
        return ok(identifier, display(target), target.stat().st_size, digest)


def _usable_item(identifier: str, metadata: dict, preference: list[str]) -> dict[str, Any]:
    """The items.parquet row for a /metadata answer, or SkipItem when the item cannot be used."""
    if not metadata:
        raise SkipItem("no metadata: the item is missing or dark ({} from /metadata)")
    if metadata.get("is_dark"):
        raise SkipItem("dark item")
    fields = metadata.get("metadata")
    if not isinstance(fields, dict):
        raise SkipItem("malformed metadata: no 'metadata' object")
    if fields.get("identifier") not in (None, identifier):
        raise SkipItem(f"metadata is for another identifier ({fields.get('identifier')!r})")
    files = metadata.get("files")
    chosen, reason = pick_file(files if isinstance(files, list) else [], preference)
    if chosen is None:
        raise SkipItem(reason)
    return item_row(identifier, fields, chosen)


def _cached(identifier: str, target: Path, size: int | None, md5: str | None) -> dict[str, Any] | None:
    """What to do with a cached file: its ok row when its md5 matches the metadata; the validators to
    ask the server with when the metadata has no md5 but the file is the one recorded when it was
    downloaded; None (and the file gone) otherwise. A size alone proves nothing."""
    stat = target.stat()
    if md5 is not None:
        cached = file_md5(target)
        if cached == md5:
            log.debug("%s: cached %s", identifier, display(target))
            return ok(identifier, display(target), stat.st_size, cached)
        why = "does not match the metadata md5"
    else:
        recorded = read_validators(target)
        validators = {k: recorded[k] for k in ("etag", "last_modified") if recorded.get(k)}
        unchanged = (recorded.get("size"), recorded.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns)
        if validators and unchanged and not recorded.get("partial") and size in (None, stat.st_size):
            return validators
        why = "has no md5 in the metadata and no ETag recorded when it was downloaded"
    # A cached file that cannot be shown to match must not stay under its final name.
    log.info("%s: cached %s %s; downloading again", identifier, display(target), why)
    target.unlink()
    drop_validators(target)
    return None
