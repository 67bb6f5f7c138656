"""The download stage's entry points, one per rule, plus where a recorded file lies.

- `search(settings, out_path)` writes `results/corpus/items.parquet`: one row per unique item that has
  a text file matching `file_preference`.
- `download(items_path, out_path, cache_dir, max_file_mb, ...)` writes `results/corpus/downloads.parquet`
  and, for a remote source, fills `resources/archive/{identifier}/{file_name}` (a cached file whose md5
  matches is not fetched again), within `archive.max_total_gb` (budget.py).
- `downloaded_file(path, settings)`: the file a downloads.parquet `path` names.

The source (remote or local) is chosen once, by `open_source`; nothing else here asks which it is.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from archive_encoders.archive.budget import Budget
from archive_encoders.archive.errors import ArchiveError, DiskFull
from archive_encoders.archive.files import MIB, display
from archive_encoders.archive.local import LocalSource
from archive_encoders.archive.metadata import ITEM_SCHEMA
from archive_encoders.archive.remote import RemoteSource
from archive_encoders.archive.session import Runtime
from archive_encoders.archive.source import BUDGET_REACHED, DOWNLOAD_SCHEMA, FileLimits, Source, skipped
from archive_encoders.config import with_defaults
from archive_encoders.io import write_parquet

log = logging.getLogger(__name__)

NOT_FETCHED_DISK_FULL = "not fetched: the disk was full"


def open_source(
    settings: Mapping[str, Any] | None,
    runtime: Runtime | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Source:
    """The source `archive.source` names. settings: config["archive"] or the search rule's params
    (schema defaults fill what is missing); runtime: the operational knobs, by default from settings;
    cache_dir: where a remote source downloads to."""
    settings = with_defaults("archive", settings)
    if settings["source"] == "local":
        return LocalSource(settings)
    return RemoteSource(settings, runtime or Runtime.from_mapping(settings), cache_dir)


def search(
    settings: Mapping[str, Any], out_path: str | os.PathLike, runtime: Mapping[str, Any] | None = None
) -> pl.DataFrame:
    """Find the items and their text files; write items.parquet (columns: ITEM_SCHEMA).

    settings: the rule's params (source, base_url, query, sort, max_items, local_dir, file_preference).
    runtime: config["archive"], read only for concurrency, retries, backoff_s and timeout_s.
    """
    rows = open_source(settings, Runtime.from_mapping(runtime)).search()
    if not rows:
        raise ArchiveError(
            "search found no usable item (every result was skipped: see the reasons above); "
            "check archive.query, archive.file_preference and archive.local_dir"
        )
    frame = pl.DataFrame(rows, schema=ITEM_SCHEMA)
    write_parquet(frame, out_path)
    log.info("wrote %s: %d items", display(out_path), frame.height)
    return frame


def download(
    items_path: str | os.PathLike,
    out_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    max_file_mb: float,
    settings: Mapping[str, Any] | None = None,
    runtime: Mapping[str, Any] | None = None,
    max_total_gb: float | None = None,
) -> pl.DataFrame:
    """Make each item's text file available and verified; write downloads.parquet (DOWNLOAD_SCHEMA).

    settings: config["archive"] (source, base_url, local_dir). runtime: the operational knobs, by
    default read from `settings`. max_total_gb: the download budget (None: none). For a local source
    nothing is copied: the files are verified in place and `path` is relative to local_dir's parent.
    """
    rt = Runtime.from_mapping(runtime if runtime is not None else settings)
    source = open_source(settings, rt, cache_dir)
    items = pl.read_parquet(items_path).select("identifier", "file_name", "file_size", "file_md5").to_dicts()
    budget = Budget(max_total_gb)
    results, disk_full = _fetch_all(items, source, int(float(max_file_mb) * MIB), budget, rt.concurrency)
    frame = pl.DataFrame(results, schema=DOWNLOAD_SCHEMA)
    _log_summary(frame)
    if disk_full is not None:
        _stop_on_full_disk(frame, out_path, disk_full)
    if frame.height and not (frame["status"] == "ok").any():
        raise ArchiveError("no file could be downloaded (every item was skipped: see the reasons above)")
    write_parquet(frame, out_path)
    log.info("wrote %s", display(out_path))
    return frame


def downloaded_file(path: str, settings: Mapping[str, Any]) -> Path:
    """Where a downloads.parquet `path` lies: relative to the working directory, or for a local source
    to local_dir's parent (docs/ARCHITECTURE.md), so results never hold an absolute path."""
    return open_source(settings).where(path)


def _stop_on_full_disk(frame: pl.DataFrame, out_path, disk_full: DiskFull) -> None:
    """Record what finished, then stop the run: every later stage would meet the same full disk."""
    kept = int((frame["status"] == "ok").sum())
    try:
        write_parquet(frame, out_path)
        written = f"{display(out_path)} lists them"
    except OSError as err:
        written = f"{display(out_path)} could not be written either ({err.strerror})"
    raise ArchiveError(
        f"{disk_full}: stopped the download stage. The {kept} finished file(s) stay in the cache and "
        f"{written}; a rerun reuses them. Free some space and run again."
    )


def _size_problem(item: Mapping[str, Any], limits: FileLimits) -> str | None:
    """Why the metadata alone rules the file out, before any request or budget is spent on it."""
    size = item["file_size"]
    if size is not None and size > limits.max_file_bytes:
        return f"file is {size / MIB:.2f} MiB in metadata, over max_file_mb={limits.max_file_mb}"
    if size == 0:
        return "empty text file (0 bytes in metadata)"
    return None


def _fetch_all(
    items: list[dict[str, Any]], source: Source, max_file_bytes: int, budget: Budget, workers: int
) -> tuple[list[dict[str, Any]], DiskFull | None]:
    """`source.fetch` on every item with a bounded thread pool, admitted by `budget` in item order;
    results keep the items' order. After a full disk no item is started: the files in flight finish
    (or fail), the rest are recorded as skipped, and the DiskFull is returned beside the rows."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    disk_full: DiskFull | None = None
    full = threading.Event()
    in_flight: dict[Future, int] = {}
    per_file = FileLimits(max_file_bytes)
    # The bar goes to stderr, which log_to points at the rule's log; few updates keep the log short.
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(
            total=len(items), desc=source.label, unit="file", file=sys.stderr, mininterval=5, ascii=True
        ) as bar,
    ):

        def settle(futures) -> None:
            nonlocal disk_full
            for future in futures:
                index = in_flight.pop(future)
                try:
                    results[index] = future.result()
                except DiskFull as err:
                    results[index] = skipped(items[index]["identifier"], str(err))
                    if disk_full is None:
                        log.error("%s: no further file is started", err)
                    disk_full = disk_full or err
                budget.settle(index, results[index])
                bar.update()

        def fetch_unless_full(item: dict[str, Any], limits: FileLimits) -> dict[str, Any]:
            # Runs on a worker: files queued behind the one that filled the disk are not started.
            if full.is_set():
                return skipped(item["identifier"], NOT_FETCHED_DISK_FULL, logging.DEBUG)
            try:
                return source.fetch(item, limits)
            except DiskFull:
                full.set()
                raise

        def wait_for_one() -> None:
            if not in_flight:  # the budget holds bytes only for files in flight; never spin
                raise RuntimeError("the download budget waited on files, but none is in flight")
            settle(wait(list(in_flight), return_when=FIRST_COMPLETED).done)

        for index, item in enumerate(items):
            problem = _size_problem(item, per_file)
            if disk_full is not None:
                results[index] = skipped(item["identifier"], NOT_FETCHED_DISK_FULL, logging.DEBUG)
            elif problem:
                results[index] = skipped(item["identifier"], problem)
            else:
                held = budget.admit(index, item["file_size"], wait_for_one)
                if not budget.reached:
                    limits = FileLimits(max_file_bytes, held)
                    in_flight[pool.submit(fetch_unless_full, item, limits)] = index
                    continue
                # the budget said so once in the log; one line per item would bury the rest
                results[index] = skipped(item["identifier"], BUDGET_REACHED, logging.DEBUG)
            bar.update()
        settle(as_completed(list(in_flight)))
    return results, disk_full  # type: ignore[return-value]


def _log_summary(frame: pl.DataFrame) -> None:
    ok = frame.filter(pl.col("status") == "ok")
    over_budget = frame.filter(pl.col("reason") == BUDGET_REACHED).height
    log.info(
        "%d of %d files ok (%.1f MiB); %d skipped%s",
        ok.height,
        frame.height,
        (ok["bytes"].sum() or 0) / MIB,
        frame.height - ok.height,
        f", {over_budget} of them because the download budget was reached" if over_budget else "",
    )
