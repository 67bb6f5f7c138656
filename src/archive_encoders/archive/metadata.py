"""Metadata normalisation: archive.org's loosely typed fields into the items.parquet row.

archive.org gives many fields as a string or a list (language, collection, subject, creator...), sizes
as strings and md5s in any case; both sources (remote.py, local.py) build their rows here, so an item
reads the same whichever way it was found.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from archive_encoders.archive.safety import file_name_problem

ITEM_SCHEMA = {
    "identifier": pl.String,
    "title": pl.String,
    "creator": pl.String,
    "date": pl.String,
    "language": pl.List(pl.String),
    "collection": pl.List(pl.String),
    "subject": pl.List(pl.String),
    "licenseurl": pl.String,
    "file_name": pl.String,
    "file_size": pl.Int64,
    "file_md5": pl.String,
    "file_format": pl.String,
}

_MD5_RE = re.compile(r"[0-9a-f]{32}")


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


def as_int(value: Any) -> int | None:
    """A size as archive.org writes it ("3000"), or None when it is missing or not a count."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def as_md5(value: Any) -> str | None:
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


def item_row(identifier: str, fields: Mapping[str, Any], chosen: Mapping[str, Any]) -> dict[str, Any]:
    """One items.parquet row from an item's metadata fields and its chosen file's entry."""
    return {
        "identifier": identifier,
        "title": as_text(fields.get("title")),
        "creator": as_text(fields.get("creator")),
        "date": as_text(fields.get("date")),
        "language": as_list(fields.get("language")),
        "collection": as_list(fields.get("collection")),
        "subject": as_list(fields.get("subject")),
        "licenseurl": as_text(fields.get("licenseurl")),
        "file_name": chosen["name"],
        "file_size": as_int(chosen.get("size")),
        "file_md5": as_md5(chosen.get("md5")),
        "file_format": as_text(chosen.get("format")),
    }
