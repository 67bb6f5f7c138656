"""Metadata normalisation: archive.org's loosely typed fields into the items.parquet row.

archive.org gives many fields as a string or a list (language, collection, subject, creator...), sizes
as strings, md5s in any case and descriptions as HTML (one string or several); both sources (remote.py,
local.py) build their rows here, so an item reads the same whichever way it was found.
"""

from __future__ import annotations

import fnmatch
import html
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
    "description": pl.String,
    "licenseurl": pl.String,
    "file_name": pl.String,
    "file_size": pl.Int64,
    "file_md5": pl.String,
    "file_format": pl.String,
}

_MD5_RE = re.compile(r"[0-9a-f]{32}")
# an HTML tag or comment: `<` then a letter, `/`, `!` or `?` ("a < b" is not a tag)
TAG_RE = re.compile(r"<!--.*?-->|<[A-Za-z/!?][^<>]*>", re.DOTALL)
# tags that end a line or a block become a space; inline ones (<b>, <a>, <span>) vanish
_BREAK_RE = re.compile(r"</?(?:br|p|div|li|ul|ol|tr|td|th|table|h[1-6]|blockquote|hr)\b", re.IGNORECASE)


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


def clean_description(value: Any) -> str | None:
    """archive.org's `description` (a string or a list of them, often HTML) as one plain string: tags
    dropped, entities unescaped, whitespace collapsed; None when nothing is left.

    Unescaping can make new tags (`&lt;p&gt;` is how some items store HTML), so the steps repeat until
    the text stops changing: the result holds no tag and cleaning it again changes nothing. Each round
    that changes something shortens the text or only evens out its whitespace, so the loop ends."""
    text = " ".join(as_list(value))
    while True:
        cleaned = " ".join(html.unescape(TAG_RE.sub(_tag_gap, text)).split())
        if cleaned == text:
            return cleaned or None
        text = cleaned


def _tag_gap(match: re.Match) -> str:
    return " " if _BREAK_RE.match(match.group()) else ""


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
        "description": clean_description(fields.get("description")),
        "licenseurl": as_text(fields.get("licenseurl")),
        "file_name": chosen["name"],
        "file_size": as_int(chosen.get("size")),
        "file_md5": as_md5(chosen.get("md5")),
        "file_format": as_text(chosen.get("format")),
    }
