"""Local file chores of the stage: md5, durable renames, tidy folders, paths fit for a log."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MIB = 1024 * 1024


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
