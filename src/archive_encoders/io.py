"""Atomic writes: every output appears under its final name complete, or not at all.

A killed job leaves at most a hidden temporary next to the target; the final name only ever holds a
finished file, so Snakemake's incomplete-output tracking is never the only guard against a corrupt file.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
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


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
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


def write_parquet(frame, path: str | os.PathLike) -> None:
    """Write a polars DataFrame (or a pyarrow Table) to Parquet atomically, zstd-compressed."""
    with atomic_path(path) as tmp:
        if hasattr(frame, "write_parquet"):
            frame.write_parquet(tmp, compression="zstd", statistics=True)
        else:
            import pyarrow.parquet as pq

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
