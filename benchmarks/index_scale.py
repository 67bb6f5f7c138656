"""The search index at archive scale (issue 21): build time, peak RSS, disk, ANN recall@10 and query
latency of the HNSW graph for f32, i8 and b1 + int8 rescoring, over synthetic 384-d embeddings.

    PYTHONPATH=src .venv/bin/python benchmarks/index_scale.py [--sizes 100000 1000000] [--dtypes f32 i8 b1]
        [--workdir DIR] [--keep] [--json index_scale.json]

Data: unit vectors with structure at three scales, so that ANN recall means something: ~n^(1/4) topics,
~sqrt(n) cluster centres spread around them, sub-clusters of ~10 around the centres, and each vector a
sub-cluster's point plus its own noise (SUB_SPREAD, MEMBER_NOISE below). A query's exact 10 nearest are
mostly its sub-cluster, then its cluster, a few from neighbouring clusters (the printed `in sub-cluster`
and `in cluster` shares say how much). Written as .npy shards of 100 k float32 vectors in a scratch folder
(deleted at the end unless --keep), with 200 held-out queries from the same distribution and their exact
float32 top 10 (exact_top_k streamed over the shards).

Each size x dtype is built in a fresh process (index/storage.py's new_graph and graph_vectors; shards read
through np.load(mmap_mode="r") batch by batch, pages released once added; b1 also streams its rescoring
store), saved, then searched in another fresh process that memory-maps the graph (Index.restore(view=True))
as serving does: RSS after opening and after the queries, p50/p95 of one query (search_graph, single
thread, after 5 warm-up queries; the page cache holds the just-written files), recall@10 against exact
float32 search. The estimates (estimated_ram_bytes, estimated_disk_bytes) are printed beside the measures.
"""

from __future__ import annotations

import argparse
import json
import math
import mmap
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from archive_encoders.index.storage import (
    DTYPES,
    RESCORE_SCALES,
    RESCORE_VECTORS,
    RescoreStore,
    RescoreWriter,
    estimated_disk_bytes,
    estimated_ram_bytes,
    graph_vectors,
    new_graph,
    search_graph,
)
from archive_encoders.io import atomic_path, write_json
from archive_encoders.system import cpu_flags, cpu_model, current_rss_mb, release_freed_memory

DIMENSION = 384
SHARD_ROWS = 100_000
BATCH_ROWS = 8192  # rows added per graph.add, as the index build
K = 10
WARMUP = 5
SUB_SIZE = 10  # vectors per sub-cluster on average
CENTRE_SPREAD = 0.5  # cluster centres around their topic
SUB_SPREAD = 1.5  # sub-clusters around their cluster centre
MEMBER_NOISE = 1.0  # each vector around its sub-cluster
GRAPH = "vectors.usearch"
MB = 2**20


# --- synthetic shards ---


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Clusters:
    """The distribution: topics -> cluster centres -> sub-clusters -> vectors (noise norms relative to a
    unit centre, so cosine within a sub-cluster is ~0.8, within a cluster ~0.3)."""

    def __init__(self, count: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        clusters = max(1, round(math.sqrt(count)))
        topics = unit(rng.standard_normal((max(1, round(math.sqrt(clusters))), DIMENSION)))
        centres = unit(topics[np.arange(clusters) % len(topics)] + CENTRE_SPREAD * noise(rng, clusters))
        self.sub_cluster = rng.integers(0, clusters, max(1, count // SUB_SIZE))  # sub-cluster -> cluster
        self.subs = (centres[self.sub_cluster] + SUB_SPREAD * noise(rng, len(self.sub_cluster))).astype(
            np.float32
        )
        self.seed = seed

    def draw(self, rows: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """(unit vectors, their sub-cluster), from the seeded stream `stream` (a shard, or the queries)."""
        rng = np.random.default_rng([self.seed, 1, stream])
        subs = rng.integers(0, len(self.subs), rows)
        return unit(self.subs[subs] + MEMBER_NOISE * noise(rng, rows)), subs.astype(np.int32)


def noise(rng, rows: int) -> np.ndarray:
    return (
        rng.standard_normal((rows, DIMENSION), dtype=np.float32) / np.float32(math.sqrt(DIMENSION))
    ).astype(np.float32)


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def write_data(folder: Path, count: int, queries: int, seed: int) -> dict:
    """Shards, queries and their exact top K in `folder`; what the data looks like."""
    from archive_encoders.index.build import exact_top_k  # polars and more: kept out of the workers

    started = time.perf_counter()
    clusters = Clusters(count, seed)
    shards, labels = [], []
    for index, start in enumerate(range(0, count, SHARD_ROWS)):
        vectors, subs = clusters.draw(min(SHARD_ROWS, count - start), stream=index)
        save_npy(folder / f"shard_{index:05d}.npy", vectors)
        shards.append(folder / f"shard_{index:05d}.npy")
        labels.append(subs)
    query_vectors, query_subs = clusters.draw(queries, stream=10**9)
    save_npy(folder / "queries.npy", query_vectors)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    rows = ShardRows(shards)
    truth = exact_top_k(query_vectors, rows, K)
    save_npy(folder / "truth.npy", truth)
    subs = np.concatenate(labels)[truth]
    top = np.array(
        [[rows.row(int(key)) @ q for key in keys] for keys, q in zip(truth, query_vectors, strict=True)]
    )
    return {
        "generate_s": round(generated, 1),
        "exact_search_s": round(time.perf_counter() - started, 1),
        "clusters": len(np.unique(clusters.sub_cluster)),
        "sub_clusters": len(clusters.subs),
        "top10_in_sub_cluster": round(float(np.mean(subs == query_subs[:, None])), 3),
        "top10_in_cluster": round(
            float(np.mean(clusters.sub_cluster[subs] == clusters.sub_cluster[query_subs][:, None])), 3
        ),
        "cosine_1st": round(float(top[:, 0].mean()), 3),
        "cosine_10th": round(float(top[:, -1].mean()), 3),
    }


class ShardRows:
    """The shards as one sequence of rows for exact_top_k: slices are read from the memory maps."""

    def __init__(self, paths: list[Path]) -> None:
        self.maps = [np.load(p, mmap_mode="r") for p in paths]
        self.starts = np.cumsum([0] + [len(m) for m in self.maps])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(len(self))
        parts = []
        for shard, first in zip(self.maps, self.starts[:-1], strict=True):
            lo, hi = max(start, first), min(stop, first + len(shard))
            if lo < hi:
                parts.append(np.asarray(shard[lo - first : hi - first]))
        return np.concatenate(parts) if parts else np.empty((0, DIMENSION), np.float32)

    def row(self, key: int) -> np.ndarray:
        shard = int(np.searchsorted(self.starts, key, side="right")) - 1
        return np.asarray(self.maps[shard][key - self.starts[shard]])


# --- the two workers, each in a fresh process ---


def own_peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: a child keeps its parent's
    peak across fork and exec, so every worker would report at least the parent's data."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def release(mapped: np.memmap, rows: int) -> None:
    """Drop the first `rows` of a shard's map from this process's resident memory (the page cache keeps
    them): the build holds one batch of the shards, not a whole shard."""
    length = (mapped.offset + rows * mapped.strides[0]) // mmap.PAGESIZE * mmap.PAGESIZE
    if length and hasattr(mapped, "_mmap") and hasattr(mmap, "MADV_DONTNEED"):
        mapped._mmap.madvise(mmap.MADV_DONTNEED, 0, length)


def rss_parts_mb() -> dict[str, float]:
    """Resident memory now by kind: anonymous (the process's own) and file (mapped pages of the graph and
    rescoring files, which the kernel can drop and read again)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {kind: int(status[f"Rss{kind.capitalize()}"].split()[0]) / 1024 for kind in ("anon", "file")}


def cpu_seconds() -> float:
    """CPU time of this process so far, all its threads: a rate per core that a loaded machine's wall
    clock does not give."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_worker(args) -> dict:
    import usearch.index  # noqa: F401  the library is not the graph: loaded before the baseline

    rss_start = current_rss_mb()
    out = Path(args.out)
    shards = sorted(Path(args.data).glob("shard_*.npy"))
    graph = new_graph(DIMENSION, args.dtype, args.connectivity, args.expansion_add, args.expansion_search)
    writer = RescoreWriter(out) if args.dtype == "b1" else None
    count, started, cpu_started = 0, time.perf_counter(), cpu_seconds()
    for path in shards:
        mapped = np.load(path, mmap_mode="r")
        for start in range(0, len(mapped), BATCH_ROWS):
            batch = np.asarray(mapped[start : start + BATCH_ROWS], dtype=np.float32)
            graph.add(
                np.arange(count, count + len(batch)), graph_vectors(batch, args.dtype), threads=args.threads
            )
            if writer is not None:
                writer.add(batch)
            count += len(batch)
            release(mapped, start + len(batch))
        del mapped
    build_s, build_cpu_s = time.perf_counter() - started, cpu_seconds() - cpu_started
    if writer is not None:
        writer.close()
    started = time.perf_counter()
    with atomic_path(out / GRAPH) as tmp:
        graph.save(str(tmp))
    save_s = time.perf_counter() - started
    rescore = sum((out / n).stat().st_size for n in (RESCORE_VECTORS, RESCORE_SCALES)) if writer else 0
    peak = own_peak_rss_mb()
    release_freed_memory()  # the batches' freed temporaries: what stays is the graph
    ram, disk = (
        f(count, DIMENSION, args.dtype, args.connectivity) / MB
        for f in (estimated_ram_bytes, estimated_disk_bytes)
    )
    return {
        "count": count,
        "build_s": round(build_s, 1),
        "vectors_per_s": round(count / build_s),
        "build_cpu_s": round(build_cpu_s, 1),
        "vectors_per_cpu_s": round(count / build_cpu_s),
        "save_s": round(save_s, 1),
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(peak, 1),
        "graph_rss_mb": round(current_rss_mb() - rss_start, 1),
        "estimated_ram_mb": round(
            estimated_ram_bytes(count, DIMENSION, args.dtype, args.connectivity) / MB, 1
        ),
        "usearch_memory_usage_mb": round(graph.memory_usage / MB, 1),
        "graph_disk_mb": round((out / GRAPH).stat().st_size / MB, 1),
        "rescore_disk_mb": round(rescore / MB, 1),
        "estimated_disk_mb": round(
            estimated_disk_bytes(count, DIMENSION, args.dtype, args.connectivity) / MB, 1
        ),
        "levels": [int(level.nodes) for level in graph.levels_stats],
    }


def search_worker(args) -> dict:
    from usearch.index import Index

    out = Path(args.out)
    queries, truth = np.load(Path(args.data) / "queries.npy"), np.load(Path(args.data) / "truth.npy")
    rss_start, parts_start = current_rss_mb(), rss_parts_mb()
    started = time.perf_counter()
    graph = Index.restore(str(out / GRAPH), view=True)
    graph.expansion_search = args.expansion_search  # not kept in the file (search.py sets it the same way)
    store = RescoreStore(out) if args.dtype == "b1" else None
    open_s = time.perf_counter() - started
    rss_open, parts_open = current_rss_mb(), rss_parts_mb()
    for query in queries[:WARMUP]:
        search_graph(graph, query, K, args.dtype, store)
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        keys, _ = search_graph(graph, query, K, args.dtype, store)
        times.append(time.perf_counter() - started)
        found.append(keys)
    ms = np.asarray(times) * 1000
    shared = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    parts_end = rss_parts_mb()
    return {
        "open_s": round(open_s, 2),
        "rss_open_mb": round(rss_open - rss_start, 1),
        "rss_after_queries_mb": round(current_rss_mb() - rss_start, 1),
        **{f"rss_open_{k}_mb": round(parts_open[k] - parts_start[k], 1) for k in parts_start},
        **{f"rss_after_queries_{k}_mb": round(parts_end[k] - parts_start[k], 1) for k in parts_start},
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "recall@10_vs_exact_float32": round(float(np.mean(shared)) / K, 4),
    }


def run_worker(kind: str, data: Path, out: Path, dtype: str, args) -> dict:
    command = [
        sys.executable, __file__, "--worker", kind, "--data", str(data), "--out", str(out), "--dtype", dtype,
        "--threads", str(args.threads), "--connectivity", str(args.connectivity),
        "--expansion-add", str(args.expansion_add), "--expansion-search", str(args.expansion_search),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{kind} worker for {dtype} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the table ---

COLUMNS = [
    ("dtype", "dtype", "{}"),
    ("build s", "build_s", "{:.0f}"),
    ("vec/s", "vectors_per_s", "{:.0f}"),
    ("vec/CPU s", "vectors_per_cpu_s", "{:.0f}"),
    ("peak RSS", "peak_rss_mb", "{:.0f}"),
    ("graph RSS", "graph_rss_mb", "{:.0f}"),
    ("est RAM", "estimated_ram_mb", "{:.0f}"),
    ("mem_usage", "usearch_memory_usage_mb", "{:.0f}"),
    ("disk", "disk_mb", "{:.0f}"),
    ("est disk", "estimated_disk_mb", "{:.0f}"),
    ("RSS open", "rss_open_mb", "{:.0f}"),
    ("RSS 200q", "rss_after_queries_mb", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p95 ms", "p95_ms", "{:.2f}"),
    ("recall@10", "recall@10_vs_exact_float32", "{:.3f}"),
]


def print_table(count: int, rows: list[dict]) -> None:
    print(f"\n{count:,} vectors (MiB; RSS open / 200q: growth of the searching process)")
    print("".join(f"{title:>11}" for title, _, _ in COLUMNS))
    for row in rows:
        print("".join(f"{fmt.format(row[key]) if key in row else '-':>11}" for _, key, fmt in COLUMNS))
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--dtypes", nargs="+", default=["f32", "i8", "b1"], choices=DTYPES)
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the shards and graphs")
    parser.add_argument("--json", type=Path, default=Path("index_scale.json"), help="results written here")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="build threads")
    parser.add_argument("--connectivity", type=int, default=32)
    parser.add_argument("--expansion-add", type=int, default=128)
    parser.add_argument("--expansion-search", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["build", "search"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps((build_worker if args.worker == "build" else search_worker)(args)))
        return
    scratch = Path(tempfile.mkdtemp(prefix="index-scale.", dir=args.workdir))
    settings = {k: vars(args)[k] for k in ("threads", "connectivity", "expansion_add", "expansion_search")}
    print(f"{cpu_model()}; flags {' '.join(cpu_flags())}; load {os.getloadavg()[0]:.1f}; scratch {scratch}")
    print(f"settings {json.dumps(settings)}; {args.queries} queries, k = {K}", flush=True)
    results = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "settings": settings, "sizes": []}
    try:
        for count in args.sizes:
            data = scratch / f"n{count}"
            data.mkdir()
            shape = write_data(data, count, args.queries, args.seed)
            print(f"\n{count:,}: data {json.dumps(shape)}", flush=True)
            rows = []
            for dtype in args.dtypes:
                out = scratch / f"n{count}-{dtype}"
                out.mkdir()
                load = os.getloadavg()[0]
                row = {
                    "dtype": dtype,
                    "load_before": round(load, 1),
                    **run_worker("build", data, out, dtype, args),
                }
                row |= run_worker("search", data, out, dtype, args)
                row["disk_mb"] = round(row["graph_disk_mb"] + row["rescore_disk_mb"], 1)
                print(f"  {dtype}: {json.dumps(row)}", flush=True)
                rows.append(row)
                if not args.keep:
                    shutil.rmtree(out)
            print_table(count, rows)
            results["sizes"].append({"count": count, "data": shape, "rows": rows})
            write_json(args.json, results)
            if not args.keep:
                shutil.rmtree(data)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()
