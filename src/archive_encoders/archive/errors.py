"""The two ways the download stage says no: to the whole run, or to one item."""

from __future__ import annotations


class ArchiveError(RuntimeError):
    """The stage cannot produce its output; the message says why and what to check."""


class SkipItem(Exception):
    """One item cannot be used; the message is the reason recorded in items/downloads.parquet."""


class DiskFull(ArchiveError):
    """No space left where the files go: the stage stops, keeping what finished."""
