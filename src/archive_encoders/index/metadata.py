"""An index's chunks.parquet (row, chunk_id, doc_id, title, snippet; the row is the graph's key), written
in small row groups and read by row at query time, so that a search process holds no per-row structure:
its start-up and memory do not grow with the corpus.

`MetadataWriter` appends batches and writes row groups of ROW_GROUP_ROWS rows, atomically.
`ChunkMetadata` opens the file, checks it against what the manifest records (its columns, its row count
and the sha256 of its chunk ids in row order, hashed one row group at a time) and keeps only the row
groups' first rows; `rows()` decodes only the row groups its rows are in, the last few kept in a small
LRU. It reads any row-group layout (an index written before MetadataWriter has 8192-row groups).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archive_encoders.index.errors import BrokenIndex, read_part
from archive_encoders.io import atomic_path

# A hit's fetch decodes its whole row group; a reader holds the parsed footer, ~4 KB per row group.
# benchmarks/index_metadata.py (200k rows, 240-character snippets, 2 shared cores), 10 random hits from a
# cold cache, p50 over two runs: 8-11 ms at 1024 rows, 5-9 at 512, 4-5 at 256, 39-60 at 8192 (build.py's).
# 1024 costs 1 % of disk over 8192 and ~4 MB of footer per million rows (512: 5 % and ~8 MB).
ROW_GROUP_ROWS = 1024
HASH_BATCH_ROWS = 8192  # chunk ids hashed per read at open (larger batches are no faster)
# decoded rows the LRU keeps (whole row groups; the last one read is always kept): ~5 MB at 240 chars
CACHED_ROWS = 16 * ROW_GROUP_ROWS
COLUMNS = ("row", "chunk_id", "doc_id", "title", "snippet")
METADATA_COLUMNS = COLUMNS[1:]  # what a hit shows; `row` is the file's position, written for readers
# a document's chunks repeat its id and title; ids and snippets are unique, a dictionary only costs there.
# Statistics only for `row`: a reader holds the footer, and min/max snippets per row group only add to it.
DICTIONARY_COLUMNS = ["doc_id", "title"]


def sha256_of_ids(chunk_ids: Iterable[str]) -> str:
    """The fingerprint of the chunk ids in row order that index.json stores (corpus.chunk_ids_sha256)."""
    return hashlib.sha256("\n".join(chunk_ids).encode()).hexdigest()


class IdFingerprint:
    """sha256_of_ids of every chunk id so far, fed in pieces (the same digest as the whole list's)."""

    def __init__(self) -> None:
        self.hash, self.any = hashlib.sha256(), False

    def update(self, ids: Sequence[str]) -> None:
        if ids:
            self.hash.update((("\n" if self.any else "") + "\n".join(ids)).encode())
            self.any = True

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


def arrow_schema():
    import pyarrow as pa

    return pa.schema([("row", pa.uint64())] + [(name, pa.string()) for name in METADATA_COLUMNS])


class MetadataWriter:
    """chunks.parquet written batch by batch in row groups of `row_group_rows` rows (the last may be
    shorter), atomically: the file appears under `path` complete when the block ends, or not at all.

        with MetadataWriter(folder / CHUNKS) as writer:
            writer.write(batch)  # polars or pyarrow: row, chunk_id, doc_id, title, snippet

    Rows must come in order (each batch's `row` continues the last) and every chunk id must be set.
    Memory holds one batch and at most one row group of rows not yet written.
    """

    def __init__(self, path: str | os.PathLike, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be positive, not {row_group_rows}")
        self.path, self.row_group_rows = Path(path), int(row_group_rows)
        self.rows = 0  # rows received so far
        self.pending: list[Any] = []  # tables not yet written, fewer than row_group_rows rows in all
        self.stack: contextlib.ExitStack | None = None
        self.writer = None

    def __enter__(self) -> MetadataWriter:
        import pyarrow.parquet as pq

        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self.writer = stack.enter_context(
                pq.ParquetWriter(
                    tmp,
                    arrow_schema(),
                    compression="zstd",
                    use_dictionary=DICTIONARY_COLUMNS,
                    write_statistics=["row"],
                )
            )
            self.stack = stack.pop_all()
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            try:
                self.flush(final=True)
            except BaseException as err:  # the temporary is removed, as for an error inside the block
                self.stack.__exit__(type(err), err, err.__traceback__)
                raise
        self.stack.__exit__(kind, error, trace)

    def write(self, batch) -> None:
        """Append a batch (a polars DataFrame or a pyarrow Table with the five columns)."""
        import pyarrow as pa

        if self.writer is None:
            raise ValueError(f"{self.path}: MetadataWriter.write outside its `with` block")
        table = batch.to_arrow() if hasattr(batch, "to_arrow") else batch
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"{self.path}: the batch has no column {', '.join(missing)}")
        try:
            table = table.select(list(COLUMNS)).cast(arrow_schema())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            message = f"{self.path}: `row` must be a row number and the other columns text ({err})"
            raise ValueError(message) from None
        if table.column("chunk_id").null_count:
            raise ValueError(f"{self.path}: the batch has rows without a chunk_id")
        rows = table.column("row")
        expected = np.arange(self.rows, self.rows + table.num_rows, dtype=np.uint64)
        if rows.null_count or not np.array_equal(rows.to_numpy(), expected):
            raise ValueError(
                f"{self.path}: the batch's `row` column must run from {self.rows} to "
                f"{self.rows + table.num_rows - 1} (rows are the graph's keys, written in order)"
            )
        self.rows += table.num_rows
        self.pending.append(table)
        self.flush(final=False)

    def flush(self, final: bool) -> None:
        """Write the pending rows' full row groups (and, when `final`, the rest)."""
        import pyarrow as pa

        waiting = sum(t.num_rows for t in self.pending)
        full = waiting if final else waiting - waiting % self.row_group_rows
        if not full:
            return
        table = pa.concat_tables(self.pending)
        self.writer.write_table(table.slice(0, full), row_group_size=self.row_group_rows)
        rest = table.slice(full)
        self.pending = [rest] if rest.num_rows else []


class ChunkMetadata:
    """chunks.parquet opened for search: checked at open, read by row afterwards.

    count and chunk_ids_sha256 are what the manifest (`recorded_in`, for messages) records: the file must
    hold `count` rows whose chunk ids, in row order, hash to `chunk_ids_sha256`. Any disagreement, and any
    file that cannot be read (at open or later), is a BrokenIndex naming the file. The file stays open, so
    the rows stay the ones checked even if the folder is rebuilt (replaced) under a running search.
    Holds per row group only its first row; decoded row groups up to `cached_rows` rows.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        count: int,
        chunk_ids_sha256: str,
        recorded_in: str = "the manifest",
        cached_rows: int = CACHED_ROWS,
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path, self.count, self.cached_rows = Path(path), int(count), int(cached_rows)
        if not self.path.is_file():
            raise BrokenIndex(f"{self.path}: missing; rebuild the index")
        # read with pread, not memory-mapped: hashing every id must not leave the file's pages in RSS
        self.source = read_part(self.path, lambda: pa.OSFile(str(self.path)))
        try:
            self.file = read_part(self.path, lambda: pq.ParquetFile(self.source))
            self.check(recorded_in, chunk_ids_sha256)
        except BaseException:
            self.source.close()
            raise
        sizes = [self.file.metadata.row_group(g).num_rows for g in range(self.file.num_row_groups)]
        self.row_group_starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.cache: OrderedDict[int, Any] = OrderedDict()  # row group -> its decoded table, LRU first
        self.lock = threading.Lock()  # one reader of the file and the cache at a time

    def check(self, recorded_in: str, chunk_ids_sha256: str) -> None:
        """The columns, the row count and the chunk ids' hash, streamed: HASH_BATCH_ROWS ids at a time."""
        import pyarrow as pa

        names = self.file.schema_arrow.names
        missing = [c for c in METADATA_COLUMNS if c not in names]
        if missing:
            raise BrokenIndex(f"{self.path}: no column {', '.join(missing)}; rebuild the index")
        rows = self.file.metadata.num_rows
        if rows != self.count:
            raise BrokenIndex(
                f"{self.path}: {rows} rows, but {recorded_in} says {self.count} vectors; rebuild the index"
            )
        wrong_ids = BrokenIndex(
            f"{self.path}: its chunk ids are not the ones the vectors were built from (chunk_ids_sha256 in "
            f"{recorded_in}); rebuild the index"
        )
        kind = self.file.schema_arrow.field("chunk_id").type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
            raise wrong_ids
        fingerprint = IdFingerprint()
        # the ids only, a batch at a time across row groups (fewer reads than one per small row group)
        batches = self.file.iter_batches(HASH_BATCH_ROWS, columns=["chunk_id"], use_threads=False)
        while (batch := read_part(self.path, lambda: next(batches, None))) is not None:
            ids = batch.column(0)
            if ids.null_count:
                raise wrong_ids
            fingerprint.update(ids.to_pylist())
        if fingerprint.hexdigest() != chunk_ids_sha256:
            raise wrong_ids

    def rows(self, row_numbers: Sequence[int]) -> list[dict[str, Any]]:
        """The chunk_id, doc_id, title and snippet of each row, in the order asked (repeats allowed),
        decoding only the row groups they are in."""
        numbers = np.asarray(row_numbers, dtype=np.int64).reshape(-1)
        if numbers.size and (numbers.min() < 0 or numbers.max() >= self.count):
            bad = int(numbers[(numbers < 0) | (numbers >= self.count)][0])
            raise BrokenIndex(f"{self.path}: row {bad} asked for, but it holds {self.count} rows")
        groups = np.searchsorted(self.row_group_starts, numbers, side="right") - 1
        found: dict[int, dict[str, Any]] = {}
        with self.lock:
            for group in dict.fromkeys(groups.tolist()):  # each row group once, in order of first need
                table = self.row_group(group)
                start = int(self.row_group_starts[group])
                for n in {int(n) for n in numbers[groups == group]}:
                    # a slice, not Table.take: take loads pyarrow's compute kernels (~45 MB of RSS)
                    found[n] = table.slice(n - start, 1).to_pylist()[0]
        return [found[int(n)] for n in numbers]

    def row_group(self, group: int):
        """Row group `group`'s metadata columns, decoded (from the LRU when it holds them)."""
        if group in self.cache:
            self.cache.move_to_end(group)
            return self.cache[group]
        # one thread: pyarrow's pool would add ~50 MB of RSS, and is slower on one small group
        table = read_part(
            self.path,
            lambda: self.file.read_row_group(group, columns=list(METADATA_COLUMNS), use_threads=False),
        )
        self.cache[group] = table
        while len(self.cache) > 1 and self.held_rows > self.cached_rows:
            self.cache.popitem(last=False)
        return table

    @property
    def held_rows(self) -> int:
        """Rows the LRU holds decoded now."""
        return sum(table.num_rows for table in self.cache.values())

    def close(self) -> None:
        self.cache.clear()
        self.source.close()
