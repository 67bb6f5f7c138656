"""chunks.parquet read by row (index/metadata.py): the row-group size, and memory against the corpus size.

    .venv/bin/python benchmarks/index_metadata.py [--rows 200000] [--sizes 256,512,1024,2048,8192]
        [--snippet-chars 240] [--queries 200] [--work /tmp/index-metadata-bench]

1. Row-group size: a synthetic chunks.parquet of --rows rows (snippets of --snippet-chars characters of
   random words, the config's default length; titles and doc ids repeating per 20-chunk document) written
   by MetadataWriter with each size; per size its disk size, its footer (which a reader holds: it grows
   with the number of row groups), ChunkMetadata's open (checks and the chunk-id hash) and one query's
   fetch of 10 random rows from a cold cache (p50, p95 over --queries queries).
2. Memory: a fresh process opens files of --rows / 4 and --rows rows (ROW_GROUP_ROWS) and fetches 10
   random rows per query for --queries queries; its RSS after open and after the queries (VmRSS), beside
   the same for the previous reader (the whole file read into Python lists and a chunk_id -> row dict).
   The reader by row should not grow with rows.

Not a test: timings depend on the machine and its load, printed (/proc/loadavg) with every figure.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from archive_encoders.index.metadata import ROW_GROUP_ROWS, ChunkMetadata, MetadataWriter, sha256_of_ids

WORDS = [f"w{i:04d}" for i in range(5000)]
BATCH = 8192  # rows per written batch, as index/build.py streams them


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def snippet(rng: random.Random, chars: int) -> str:
    return " ".join(rng.choices(WORDS, k=chars // 5 + 1))[:chars]


def batches(rows: int, snippet_chars: int, seed: int = 0):
    rng = random.Random(seed)
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        row = np.arange(start, start + n, dtype=np.uint64)
        yield pa.table(
            {
                "row": row,
                "chunk_id": [f"doc{r // 20}:{r % 20}" for r in row.tolist()],
                "doc_id": [f"doc{r // 20}" for r in row.tolist()],
                "title": [f"Title of document {r // 20}" for r in row.tolist()],
                "snippet": [snippet(rng, snippet_chars) for _ in range(n)],
            }
        )


def write(path: Path, rows: int, row_group_rows: int, snippet_chars: int) -> str:
    """The file, and its chunk ids' hash."""
    ids = [f"doc{r // 20}:{r % 20}" for r in range(rows)]
    with MetadataWriter(path, row_group_rows) as writer:
        for batch in batches(rows, snippet_chars):
            writer.write(batch)
    return sha256_of_ids(ids)


def row_group_sizes(args) -> None:
    print(
        f"1. row-group size, {args.rows} rows of {args.snippet_chars}-character snippets (load {loadavg()})"
    )
    print(
        f"{'rows/group':>10} {'disk MB':>8} {'footer KB':>9} {'open s':>7} {'fetch p50 ms':>12} {'p95 ms':>7}"
    )
    rng = np.random.default_rng(0)
    for size in args.sizes:
        path = args.work / f"chunks-{size}.parquet"
        digest = write(path, args.rows, size, args.snippet_chars)
        started = time.perf_counter()
        meta = ChunkMetadata(path, args.rows, digest)
        opened = time.perf_counter() - started
        times = []
        for _ in range(args.queries):
            wanted = rng.integers(0, args.rows, 10)
            meta.cache.clear()  # cold: each hit's row group decoded
            started = time.perf_counter()
            meta.rows(wanted)
            times.append(1000 * (time.perf_counter() - started))
        footer_kb = meta.file.metadata.serialized_size / 1024
        meta.close()
        p50, p95 = statistics.median(times), float(np.percentile(times, 95))
        mb = path.stat().st_size / 2**20
        print(f"{size:>10} {mb:>8.1f} {footer_kb:>9.0f} {opened:>7.2f} {p50:>12.2f} {p95:>7.2f}")


PROBE = """
import sys, numpy as np
from archive_encoders.index.metadata import ChunkMetadata

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

path, rows, digest, mode, queries = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
import pyarrow.parquet as pq  # loaded before the baseline, as a search process has it
before = rss_mb()
rng = np.random.default_rng(0)
if mode == "by-row":
    meta = ChunkMetadata(path, rows, digest)
    opened = rss_mb()
    for _ in range(queries):
        meta.rows(rng.integers(0, rows, 10))
else:  # the previous reader: every column in Python lists, and a chunk_id -> row dict
    meta = pq.read_table(path).to_pydict()
    by_id = {cid: i for i, cid in enumerate(meta["chunk_id"])}
    opened = rss_mb()
    for _ in range(queries):
        [meta["snippet"][int(r)] for r in rng.integers(0, rows, 10)]
print(f"{opened - before:.1f} {rss_mb() - before:.1f}")
"""


def memory(args) -> None:
    print(f"\n2. RSS growth of a fresh process over its baseline, MB (load {loadavg()})")
    print(f"{'rows':>8} {'reader':>12} {'after open':>10} {'after queries':>13}")
    for rows in (args.rows // 4, args.rows):
        path = args.work / f"chunks-scaling-{rows}.parquet"
        digest = write(path, rows, ROW_GROUP_ROWS, args.snippet_chars)
        for mode in ("by-row", "whole-file"):
            command = [sys.executable, "-c", PROBE, str(path), str(rows), digest, mode, str(args.queries)]
            opened, after = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
            print(f"{rows:>8} {mode:>12} {opened:>10} {after:>13}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[256, 512, 1024, 2048, 8192]
    )
    parser.add_argument("--snippet-chars", type=int, default=240)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("/tmp/index-metadata-bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    row_group_sizes(args)
    memory(args)


if __name__ == "__main__":
    main()
