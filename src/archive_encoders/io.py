"""Atomic writes: every output appears under its final name complete, or not at all.

A killed job leaves at most a hidden temporary next to the target; the final name only ever holds a
finished file, so Snakemake's incomplete-output tracking is never the only guard against a corrupt file.
The next write to the same target removes such leftovers (`.name.XXXXXXXX.tmp`, only that target's, only
when no live writer holds them), and finishes a folder swap that a kill interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import numbers
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# a temporary younger than this may be one a writer has just made and not yet locked: left alone
STALE_AFTER_S = 60.0


def _temp_pattern(target: Path) -> re.Pattern:
    """What mkstemp/mkdtemp name a temporary of `target` (the random part has no dot, so the temporaries
    of `a` and of `a.b` never match each other's pattern)."""
    return re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\.tmp")


def _backup_of(target: Path) -> Path:
    """Where atomic_dir keeps the previous folder while it swaps the new one in."""
    return target.with_name(f".{target.name}.old")


def _lock(path: Path) -> int:
    """An open descriptor of `path` holding an exclusive flock: the temp is in use while it is open."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone already, or not ours to read
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock
    return False


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries a killed writer left beside `target`: those of this target's name only
    (a parallel job writing another target in the same folder keeps its own), older than STALE_AFTER_S
    and held by no live writer. Returns what was removed."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern, removed = _temp_pattern(target), []
    now = time.time()
    with os.scandir(target.parent) as entries:
        stale = [Path(e.path) for e in entries if pattern.fullmatch(e.name)]
    for path in stale:
        try:
            age = now - path.lstat().st_mtime
        except OSError:
            continue
        if age < STALE_AFTER_S or path.is_symlink() or _held(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        log.info("removed %s, left by a killed write of %s", path, target)
        removed.append(path)
    return removed


def recover_swap(target: str | os.PathLike) -> None:
    """Finish an atomic_dir swap a kill interrupted: a backup with no target is the last complete folder
    and is put back; a backup beside a target is a finished swap's leftover and is removed."""
    target = Path(target)
    backup = _backup_of(target)
    if not backup.is_dir():
        return
    if target.exists():
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(backup, target)
        log.warning("restored %s from %s (a swap was killed half-way)", target, backup)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside `target`; rename it into place only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until the end: a cleaner never removes a live temp
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes 0600 files; outputs get the usual umask-based mode (cluster jobs, other readers)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only if the block succeeds. The swap
    renames the old folder to a backup, the new one in, then removes the backup: killed at any step, the
    disk holds the old or the new folder (recover_swap, on the next write, puts a lone backup back)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_swap(target)
    remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    fd = _lock(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        if target.exists():
            backup = _backup_of(target)
            os.replace(target, backup)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """`obj` as strict JSON: NaN and infinities (a metric of an empty or constant set) are written as
    null, never as the bare `NaN` that strict parsers refuse."""
    text = json.dumps(
        _finite_or_null(obj), indent=2, ensure_ascii=False, sort_keys=True, default=str, allow_nan=False
    )
    write_text(path, text + "\n")


def _finite_or_null(obj: Any) -> Any:
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite_or_null(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(value) for value in obj]
    return obj


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(frame, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write a polars DataFrame (or a pyarrow Table) to Parquet atomically, zstd-compressed; `metadata`:
    key-value pairs for the file's footer (polars frames only; read back by polars.read_parquet_metadata)."""
    with atomic_path(path) as tmp:
        if hasattr(frame, "write_parquet"):
            frame.write_parquet(tmp, compression="zstd", statistics=True, metadata=metadata)
        else:
            import pyarrow.parquet as pq

            if metadata:
                raise ValueError("write_parquet: footer metadata is written for polars frames only")
            pq.write_table(frame, tmp, compression="zstd")


@contextlib.contextmanager
def parquet_batches(path: str | os.PathLike, schema: Any) -> Iterator[Any]:
    """Write a Parquet file one row group at a time, atomically: yields `write(rows)`, where rows is
    anything `polars.DataFrame(rows, schema=schema)` takes. Memory holds one row group, not the file."""
    import polars as pl
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        empty = pl.DataFrame(schema=schema).to_arrow()
        with pq.ParquetWriter(tmp, empty.schema, compression="zstd") as writer:
            yield lambda rows: writer.write_table(pl.DataFrame(rows, schema=schema).to_arrow())
