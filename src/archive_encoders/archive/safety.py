"""Path safety: identifiers and file names from archive.org are untrusted input.

A name is checked lexically first, then the resolved path (symlinks followed) must stay inside the
resolved root, so neither `../` nor a planted symlink can redirect a write.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

# archive.org identifiers are letters, digits, '.', '_' and '-' (at most 100 characters); a little
# slack for mirrors, none for anything that could name another folder.
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
# Linux file systems hold at most 255 bytes per name (errno 36 past it); a download first lives under
# `<name>.part` and records its validators in `<name>.ia.json`, so the name itself may use less.
NAME_MAX_BYTES = 255
MAX_COMPONENT_BYTES = NAME_MAX_BYTES - len(".ia.json")


class UnsafePathError(ValueError):
    """A name from remote metadata that would write outside the download folder."""


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
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in parts)
    if longest > MAX_COMPONENT_BYTES:
        return f"has a path component of {longest} bytes (UTF-8), over the {MAX_COMPONENT_BYTES} allowed"
    return None


def inside(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or lies under it (both taken as given: resolve them first)."""
    return path == root or root in path.parents


def safe_target(root: str | os.PathLike, identifier: str, file_name: str) -> Path:
    """`root/identifier/file_name`, or UnsafePathError when it could resolve outside `root`."""
    problem = identifier_problem(identifier)
    if problem:
        raise UnsafePathError(f"identifier {identifier!r} {problem}")
    problem = file_name_problem(file_name)
    if problem:
        raise UnsafePathError(f"file name {file_name!r} {problem}")
    root = Path(root)
    target = root / identifier / PurePosixPath(file_name)
    if not inside(target.resolve(), root.resolve()):
        raise UnsafePathError(f"{identifier}/{file_name} resolves outside {root} (symlink?)")
    return target
