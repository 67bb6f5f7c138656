"""The local source: a folder in `ia download` layout (`<local_dir>/<identifier>/<files>`).

Each item folder may hold `<identifier>_meta.xml` (title, creator, language, collection, subject,
description...; repeated elements become lists) and `<identifier>_files.xml` (archive.org's md5, size and
format per file). Nothing is copied: files are verified in place, and downloads.parquet paths are relative to
local_dir's parent (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from archive_encoders.archive.errors import ArchiveError
from archive_encoders.archive.files import MIB, display, file_md5, note_encoding, os_problem
from archive_encoders.archive.metadata import as_md5, item_row, pick_file
from archive_encoders.archive.safety import UnsafePathError, identifier_problem, inside, safe_target
from archive_encoders.archive.source import BUDGET_REACHED, FileLimits, ok, skipped

log = logging.getLogger(__name__)


class LocalSource:
    """`archive.source: local`."""

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = settings
        self.local_dir = settings["local_dir"]
        self.label = f"verify {display(self.local_dir)}" if self.local_dir else "verify"

    def where(self, path: str) -> Path:
        return Path(self.local_dir).parent / path

    def _root(self) -> Path:
        if not self.local_dir or not Path(self.local_dir).is_dir():
            raise ArchiveError(f"archive.local_dir: folder {self.local_dir!r} does not exist")
        return Path(self.local_dir)

    # --- search ---

    def search(self) -> list[dict[str, Any]]:
        root = self._root()
        max_items = int(self.settings["max_items"])
        if self.settings.get("query"):
            log.info("archive.query is not used for a local source; every item folder is read")
        rows: list[dict[str, Any]] = []
        for entry in sorted(root.iterdir(), key=lambda p: p.name):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if len(rows) >= max_items:
                log.info("stopping at max_items=%d", max_items)
                break
            row = self._scan_item(entry, root.resolve())
            if row is not None:
                rows.append(row)
        log.info("local archive %s: %d items", display(root), len(rows))
        return rows

    def _scan_item(self, entry: Path, real_root: Path) -> dict[str, Any] | None:
        identifier = entry.name
        problem = identifier_problem(identifier)
        if problem:
            log.warning("skip folder %r: unsafe identifier: %s", identifier, problem)
            return None
        if not inside(entry.resolve(), real_root):
            log.warning("skip item %s: its folder resolves outside local_dir (symlink)", identifier)
            return None
        chosen, reason = pick_file(_files_on_disk(entry, real_root), self.settings["file_preference"])
        if chosen is None:
            log.warning("skip item %s: %s", identifier, reason)
            return None
        path = entry / PurePosixPath(chosen["name"])
        # md5 from _files.xml is archive.org's; the download step checks the local copy against it.
        # A file over max_file_mb is not read here: the download step skips it by its size.
        chosen["md5"] = as_md5(chosen.get("md5"))
        if chosen["md5"] is None and chosen["size"] <= float(self.settings["max_file_mb"]) * MIB:
            try:
                chosen["md5"] = file_md5(path)
            except OSError as err:
                log.warning("skip item %s: %s", identifier, os_problem(err, path))
                return None
        return item_row(identifier, _read_meta_xml(entry / f"{identifier}_meta.xml"), chosen)

    # --- files ---

    def fetch(self, item: Mapping[str, Any], limits: FileLimits) -> dict[str, Any]:
        root = self._root()
        identifier, name = item["identifier"], item["file_name"]
        try:
            path = safe_target(root, identifier, name)
        except UnsafePathError as err:
            return skipped(identifier, f"unsafe path: {err}")
        try:
            return self._verify(identifier, name, path, item, limits, root)
        except OSError as err:  # unreadable, or gone since the search
            return skipped(identifier, os_problem(err, path))

    def _verify(self, identifier, name, path: Path, item, limits: FileLimits, root: Path) -> dict[str, Any]:
        if not path.is_file():  # a FIFO or a folder is not a text file either
            return skipped(identifier, f"{identifier}/{name} is missing from local_dir or not a regular file")
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            return skipped(identifier, f"file is {size / MIB:.2f} MiB, over max_file_mb={limits.max_file_mb}")
        if limits.budget_bytes is not None and size > limits.budget_bytes:
            return skipped(identifier, BUDGET_REACHED)  # it grew since the search: no room left for it
        if size == 0:
            return skipped(identifier, "empty text file (0 bytes)")
        md5 = file_md5(path)
        if item["file_md5"] and md5 != item["file_md5"]:
            return skipped(identifier, f"md5 mismatch: expected {item['file_md5']}, file has {md5}")
        note_encoding(identifier, path)
        return ok(identifier, os.path.relpath(path, root.parent).replace(os.sep, "/"), size, md5)


def _files_on_disk(entry: Path, real_root: Path) -> list[dict[str, Any]]:
    """The item folder's files, with archive.org's format and md5 where _files.xml lists them."""
    identifier = entry.name
    listed = _read_files_xml(entry / f"{identifier}_files.xml")
    on_disk = []
    for dirpath, dirnames, filenames in os.walk(entry):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            name = path.relative_to(entry).as_posix()
            if not inside(path.resolve(), real_root):
                log.warning("%s: ignoring %r, a symlink that leads outside local_dir", identifier, name)
                continue
            problem = _not_readable_file(path)
            if problem:
                log.warning("%s: ignoring %r: %s", identifier, name, problem)
                continue
            info = listed.get(name, {})
            size = path.stat().st_size
            on_disk.append({"name": name, "format": info.get("format"), "md5": info.get("md5"), "size": size})
    return on_disk


def _not_readable_file(path: Path) -> str | None:
    """Why `path` cannot be read as a text file: a dangling symlink, a FIFO (reading it would block
    for ever), a socket or device, or no read permission; None when it can."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "no read permission"
    return None


def _read_meta_xml(path: Path) -> dict[str, Any]:
    """`<identifier>_meta.xml`: repeated elements (creator, language, collection, subject) become lists.

    A description written as raw HTML (`<p>` inside `<description>`) parses as child elements: it is read
    back as markup, which metadata.clean_description turns into one plain string; other elements keep
    the text of any element inside them."""
    if not path.is_file():
        return {}
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        log.warning("%s: unreadable metadata (%s); using the folder name only", display(path), err)
        return {}
    out: dict[str, Any] = {}
    for child in root:
        text = (_inner_markup(child) if child.tag == "description" else "".join(child.itertext())).strip()
        if not text:
            continue
        if child.tag in out:
            previous = out[child.tag]
            out[child.tag] = [*previous, text] if isinstance(previous, list) else [previous, text]
        else:
            out[child.tag] = text
    return out


def _inner_markup(element: ET.Element) -> str:
    return (element.text or "") + "".join(ET.tostring(c, encoding="unicode") for c in element)


def _read_files_xml(path: Path) -> dict[str, dict[str, Any]]:
    """`<identifier>_files.xml`: file name -> {md5, size, format} as listed by archive.org."""
    if not path.is_file():
        return {}
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        log.warning("%s: unreadable file list (%s); computing md5 and size instead", display(path), err)
        return {}
    listed = {}
    for node in root.iter("file"):
        name = node.get("name")
        if name:
            listed[name] = {
                tag: (node.findtext(tag) or "").strip() or None for tag in ("md5", "size", "format")
            }
    return listed
