"""Local file chores of the stage: md5, durable renames, tidy folders, paths fit for a log."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from archive_encoders.archive.errors import DiskFull

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
VALIDATORS_SUFFIX = ".ia.json"  # beside a download: the server's ETag/Last-Modified and the file's stat


def os_problem(err: OSError, path: str | os.PathLike) -> str:
    """A one-line reason for a failed file operation; DiskFull when there is no space left at all.

    A full disk stops the stage (every later file would fail the same way); any other error (a name too
    long, a folder without write permission) concerns this one file.
    """
    what = err.strerror or type(err).__name__
    code = errno.errorcode.get(err.errno or 0, str(err.errno))
    if err.errno in DISK_FULL_ERRNOS:
        raise DiskFull(f"disk full ({code}) while writing {display(path)}") from None
    return f"cannot write or read {display(path)}: {what} ({code})"


def file_md5(path: str | os.PathLike) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def display(path: str | os.PathLike) -> str:
    """A path for logs and outputs: relative to the working directory whenever it lies inside it."""
    path = Path(path)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return path.relative_to(Path.cwd()).as_posix()
    return path.as_posix()


def replace_durably(part: Path, target: Path) -> None:
    """Rename a verified `part` to `target` so that a crash leaves one or the other, whole."""
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, target)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prune_empty(folder: Path, root: Path) -> None:
    """Remove the now-empty folders a skipped item left (a kept .part keeps its folder)."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def note_encoding(identifier: str, path: Path) -> None:
    """Say in the log when a file is not UTF-8. Decoding is the clean stage's job: the bytes are kept
    exactly as served."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not just a multi-byte character cut at the sample's end
            log.info("%s: not valid UTF-8 (kept as bytes; decoding is left to the clean stage)", identifier)


def validators_path(target: Path) -> Path:
    return target.with_name(target.name + VALIDATORS_SUFFIX)


def read_validators(target: Path) -> dict[str, Any]:
    """What was recorded beside `target` (empty when nothing or junk was)."""
    try:
        recorded = json.loads(validators_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def write_validators(target: Path, recorded: dict[str, Any]) -> None:
    """Write the record atomically under a short temporary name (the target's own may be near NAME_MAX)."""
    fd, tmp = tempfile.mkstemp(prefix=".v", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(recorded, fh, sort_keys=True)
        os.replace(tmp, validators_path(target))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def drop_validators(target: Path) -> None:
    validators_path(target).unlink(missing_ok=True)
