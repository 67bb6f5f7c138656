"""What a source of items is, and the downloads.parquet rows it returns.

Two sources share one small interface: `RemoteSource` (remote.py: archive.org through the
`internetarchive` client) and `LocalSource` (local.py: a folder in `ia download` layout). The stage
(stage.py) picks one with `open_source` from `archive.source` and never asks which it has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from archive_encoders.archive.files import MIB

log = logging.getLogger(__name__)

DOWNLOAD_SCHEMA = {
    "identifier": pl.String,
    "path": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "bytes": pl.Int64,
    "md5": pl.String,
}
BUDGET_REACHED = "download budget reached"


@dataclass(frozen=True)
class FileLimits:
    """How many bytes one file may have: `archive.max_file_mb`, and what the download budget
    (`archive.max_total_gb`) holds for it (None: no budget)."""

    max_file_bytes: int
    budget_bytes: int | None = None

    @property
    def max_file_mb(self) -> str:
        return f"{self.max_file_bytes / MIB:.4g}"


class Source(Protocol):
    """Where the items come from, where their files go, and where a recorded path lies."""

    label: str  # what fetching means here, for the progress bar ("download", "verify ...")

    def search(self) -> list[dict[str, Any]]:
        """Every usable item as an items.parquet row (metadata.ITEM_SCHEMA), unusable ones logged."""
        ...

    def fetch(self, item: Mapping[str, Any], limits: FileLimits) -> dict[str, Any]:
        """Make the item's file available and verified; one downloads.parquet row (`ok` or `skipped`)."""
        ...

    def where(self, path: str) -> Path:
        """The file a downloads.parquet `path` names, as this process can open it."""
        ...


def ok(identifier: str, path: str, size: int, md5: str) -> dict[str, Any]:
    return {"identifier": identifier, "path": path, "status": "ok", "reason": None, "bytes": size, "md5": md5}


def skipped(identifier: str, reason: str, level: int = logging.WARNING) -> dict[str, Any]:
    log.log(level, "skip item %r: %s", identifier, reason)
    return {
        "identifier": identifier,
        "path": None,
        "status": "skipped",
        "reason": reason,
        "bytes": None,
        "md5": None,
    }
