"""One file into the cache: stream into `<name>.part`, resume with Range, verify, rename into place.

What the `internetarchive` client does not do (5.12: no md5 check of a fresh download, Range resume
only when sizes differ), this does: md5 checks of fresh downloads,
resume without ever writing a partial file under its final name, and a byte cap while streaming.
Where the metadata has no md5, the server's ETag (or Last-Modified) is recorded beside the file
(`<name>.ia.json`): a resume sends it as If-Range, so a file changed since the partial was started
comes back whole (200) instead of being spliced, and a cached file is revalidated with If-None-Match
rather than accepted on its size. The
stable `.part` name (not a random temporary as in archive_encoders.io) is what lets a later attempt or
a rerun resume; the final name only ever appears through os.replace of a verified file.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import requests

from archive_encoders.archive.errors import SkipItem
from archive_encoders.archive.files import (
    MIB,
    drop_validators,
    file_md5,
    os_problem,
    read_validators,
    replace_durably,
    write_validators,
)
from archive_encoders.archive.retry import (
    RETRYABLE,
    HTTPStatusError,
    RetryPolicy,
    ShortBody,
    StalePartial,
    describe,
)
from archive_encoders.archive.safety import inside
from archive_encoders.archive.source import BUDGET_REACHED, FileLimits

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16


def _validators(response: requests.Response) -> dict[str, str]:
    """The answer's validators usable in If-Range: a strong ETag, and Last-Modified."""
    found = {}
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):  # RFC 9110: If-Range needs a strong validator
        found["etag"] = etag
    if response.headers.get("Last-Modified"):
        found["last_modified"] = response.headers["Last-Modified"]
    return found


def _content_range_start(response: requests.Response) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


class FileFetch:
    """One file's download; what it learns (a restart already spent) lasts across the policy's attempts.

    `size` and `md5` come from the item's metadata (either may be unknown); `url` and `auth` from the
    client's `File` object. `revalidate`: the validators recorded for a cached file under the final
    name, to ask the server whether it changed (304: keep it).
    """

    def __init__(
        self,
        session,
        url: str,
        auth,
        target: Path,
        size: int | None,
        md5: str | None,
        limits: FileLimits,
        timeout: tuple[float, float],
        identifier: str,
        revalidate: dict[str, str] | None = None,
    ):
        self.session, self.url, self.auth, self.timeout = session, url, auth, timeout
        self.target, self.part = target, target.with_name(target.name + ".part")
        self.size, self.md5, self.limits, self.identifier = size, md5, limits, identifier
        self._restarted = False  # at most one restart from byte 0 after a resumed file fails its md5
        self.revalidate = revalidate
        self.not_modified = False  # the server said the cached file under the final name is current
        self.recorded: dict[str, str] = {}  # validators of the answer the .part was started from

    def run(self, policy: RetryPolicy) -> str:
        """The file's md5 once it lies verified under its final name; SkipItem(reason) otherwise.

        An OSError (a name too long, no write permission) skips the file with its reason; a full disk
        raises DiskFull, which stops the stage.
        """
        try:
            return self._run(policy)
        except OSError as err:
            if isinstance(err, requests.exceptions.RequestException):
                raise
            raise SkipItem(os_problem(err, self.part)) from None

    def _run(self, policy: RetryPolicy) -> str:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        if not inside(self.part.parent.resolve(), self.target.parent.resolve()) or self.part.is_symlink():
            raise SkipItem(f"unsafe path: {self.part.name} is a symlink")
        try:
            digest = policy.call(self.identifier, self._attempt)
        except HTTPStatusError as err:
            if err.transient:  # the .part stays: a rerun resumes from it
                raise SkipItem(f"HTTP error after {policy.retries} retries ({err})") from None
            self._discard()
            raise SkipItem(str(err)) from None
        except ShortBody as err:
            raise SkipItem(
                f"download stayed short: {err.got} of {err.size} bytes after {policy.attempts} attempts"
            ) from None
        except RETRYABLE as err:
            raise SkipItem(
                f"download failed after {policy.attempts} attempts ({describe(err)}); "
                f"kept {self._part_size()} bytes in {self.part.name} for a later resume"
            ) from None
        except requests.exceptions.RequestException as err:  # redirect loop, invalid URL...
            raise SkipItem(f"request failed ({describe(err)})") from None
        if self.not_modified:
            return digest
        replace_durably(self.part, self.target)
        if self.recorded:  # what a later run revalidates the file with, when there is no md5
            done = self.target.stat()
            kept = {"size": done.st_size, "mtime_ns": done.st_mtime_ns}
            write_validators(self.target, {**self.recorded, **kept})
        else:
            drop_validators(self.target)
        if self.md5 is None:
            log.warning(
                "%s: downloaded without an md5 to check against (%d bytes)",
                self.identifier,
                self.target.stat().st_size,
            )
        return digest

    def _attempt(self) -> str:
        """Bring the .part up to the whole file and verify it; transient errors propagate to the policy."""
        while True:
            if self.revalidate is not None:
                self._discard()  # the cached file is the one to keep or replace, not an older partial
                if self._stream(0) is None:
                    self.not_modified = True
                    return file_md5(self.target)
                self.revalidate = None  # changed on the server: the new body is in the .part
                resumed = False
            else:
                resumed = self._fill_part()
            got = self._part_size()
            if self.size is not None and got < self.size:
                raise ShortBody(got, self.size)  # closed early without an error (no Content-Length)
            digest = file_md5(self.part)
            if self.md5 is not None and digest != self.md5:
                self._discard()
                if resumed and not self._restarted:
                    # The resumed bytes may come from an older version of the file: fetch it whole once.
                    log.warning(
                        "%s: md5 mismatch after a resumed download; downloading from byte 0", self.identifier
                    )
                    self._restarted = True
                    continue
                # A whole fresh download that disagrees with the metadata will disagree again.
                raise SkipItem(f"md5 mismatch: metadata says {self.md5}, downloaded file has {digest}")
            if got == 0:
                self._discard()
                raise SkipItem("empty text file (0 bytes downloaded)")
            return digest

    def _fill_part(self) -> bool:
        """Bring the .part to its end (one GET at most); True when it continued an earlier partial."""
        offset = self._part_size()
        if offset and not self._resumable() and self.md5 is None:
            # Without an md5 or a validator nothing would tell a splice of two versions: start again.
            log.info("%s: partial file without a recorded ETag; downloading from byte 0", self.identifier)
            self._discard()
            offset = 0
        if offset and self.size is not None and offset >= self.size and self.md5 is not None:
            return True  # killed between the last byte and the rename: check the partial as it is
        return bool(self._stream(offset))

    def _stream(self, offset: int) -> int | None:
        """One GET into the .part, from `offset`; where the body went in the file (0 for a whole
        file, `offset` for a continued partial), or None for 304 Not Modified when revalidating.

        Transport errors propagate (the policy retries and the next attempt resumes); the bytes already
        written stay in the .part.
        """
        # cnt=0: like the client's own downloads, do not count as a view on archive.org. identity: the
        # bytes on the wire are the file's, so Range offsets, Content-Length and md5 all mean one thing.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            # The partial's own version or the whole file: never a splice of two versions.
            validator = self.recorded.get("etag") or self.recorded.get("last_modified")
            if validator:
                headers["If-Range"] = validator
            log.info("%s: resuming at byte %d", self.identifier, offset)
        elif self.revalidate is not None:
            if self.revalidate.get("etag"):
                headers["If-None-Match"] = self.revalidate["etag"]
            if self.revalidate.get("last_modified"):
                headers["If-Modified-Since"] = self.revalidate["last_modified"]
        with self.session.get(
            self.url, stream=True, timeout=self.timeout, headers=headers, auth=self.auth, params={"cnt": "0"}
        ) as response:
            if response.status_code == 304 and self.revalidate is not None:
                log.debug("%s: cached file not modified on the server", self.identifier)
                return None
            asked = offset
            offset = self._start_at(response, offset)
            if offset == 0:
                if asked:
                    log.info("%s: the server sent the whole file; starting from byte 0", self.identifier)
                self.recorded = _validators(response)
                self._record_partial()
            length = response.headers.get("Content-Length")
            if length and length.isdigit():
                self._refuse_if_over(offset + int(length))
            self._write_body(response, offset)
        return offset

    def _start_at(self, response: requests.Response, offset: int) -> int:
        """Where this answer's body goes in the file: `offset` for the asked range, 0 for a whole body."""
        if response.status_code == 416 and offset:
            self._discard()  # our partial is not a prefix the server recognises
            raise StalePartial("416 Range Not Satisfiable for the partial file; starting again from byte 0")
        if response.status_code not in (200, 206):
            raise HTTPStatusError.from_response(response)
        if response.status_code == 200:
            return 0  # the server ignored the Range: take the whole body
        if _content_range_start(response) != offset:
            self._discard()  # another range than asked for cannot be appended
            got = response.headers.get("Content-Range")
            raise StalePartial(f"asked for bytes={offset}-, got Content-Range {got!r}")
        return offset

    def _write_body(self, response: requests.Response, offset: int) -> None:
        received, problem = offset, None
        with open(self.part, "ab" if offset else "wb") as fh:
            for chunk in response.iter_content(CHUNK_BYTES):
                received += len(chunk)
                problem = self._over_limits(received, streaming=True)
                if problem:
                    break
                fh.write(chunk)
        if problem:
            self._discard()
            raise SkipItem(problem)

    def _refuse_if_over(self, content_length: int) -> None:
        problem = self._over_limits(content_length, streaming=False)
        if problem:
            self._discard()
            raise SkipItem(problem)

    def _over_limits(self, total: int, streaming: bool) -> str | None:
        """Why a file of `total` bytes (received so far, or by Content-Length) cannot be kept, or None."""
        max_mb = self.limits.max_file_mb
        if total > self.limits.max_file_bytes:
            if streaming:
                return f"file exceeds max_file_mb={max_mb} while streaming (metadata said less)"
            return f"file is {total / MIB:.2f} MiB (Content-Length), over max_file_mb={max_mb}"
        budget = self.limits.budget_bytes
        if budget is not None and total > budget:
            if self.size is None:
                return BUDGET_REACHED
            # The budget held this file's metadata size; a longer body is not the file it described.
            return f"file is longer than the {self.size} bytes in its metadata, all the budget held for it"
        return None

    def _resumable(self) -> bool:
        """Whether the .part has validators recorded when it was started (If-Range can guard it)."""
        if not self.recorded:
            recorded = read_validators(self.target)
            if recorded.get("partial"):
                self.recorded = {k: recorded[k] for k in ("etag", "last_modified") if k in recorded}
        return bool(self.recorded)

    def _record_partial(self) -> None:
        """Note the validators of the answer a new .part starts from, for a later If-Range."""
        if self.recorded:
            write_validators(self.target, {**self.recorded, "partial": True})
        else:
            drop_validators(self.target)

    def _part_size(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _discard(self) -> None:
        self.part.unlink(missing_ok=True)
        if read_validators(self.target).get("partial"):
            drop_validators(self.target)
        self.recorded = {}
