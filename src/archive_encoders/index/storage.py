"""How the index stores its vectors, sized to a memory budget: the vector type of the HNSW graph (f32,
f16, i8 or b1), what it costs in RAM, and for b1 the int8 copy that rescores its candidates.

numpy and usearch only (imported by the torch-free search process). The graph's key is the row.

- f32 / f16: cosine over the floats.
- i8: cosine over int8 vectors scaled per vector (each row's largest |component| -> 127, rounded). usearch's
  own float -> int8 cast multiplies by 127 and truncates, so a 384-d unit vector (components ~0.05) keeps
  only a few levels per coordinate; cosine does not see a per-vector scale, so ours keeps ~127.
- b1: the signs as packed bits under Hamming distance; the top `multiplier` x k candidates are re-ranked
  by the float query against int8 vectors kept beside the graph (`RescoreWriter`, `RescoreStore`), as
  evaluate/compression.py measures "binary + rescore". The int8 copy is memory-mapped: a query reads its
  candidates' rows, so it costs disk, not RAM.

`search_graph` is the one search both the build's recall check and serving call: keys and cosine scores,
best first, ties by key.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from archive_encoders.io import atomic_path

DTYPES = ("f32", "f16", "i8", "b1")
AUTO = "auto"
AUTO_ORDER = ("f32", "i8", "b1")  # most precise first: what "auto" tries
DEFAULT_DTYPE = "i8"  # without a budget: the schema's default, ~1 % NDCG for 4x less than f32
BUDGET_KEY = "index.memory_budget_gb"
GIB = 2**30  # the budget's unit, as the index report's *_gb figures
RESCORE_MULTIPLIER = 4  # b1: candidates re-ranked per result (evaluate/compression.py's default)
RESCORE_VECTORS = "rescore_int8.npy"  # (count, dimension) int8
RESCORE_SCALES = "rescore_scale.npy"  # (count,) float32: vector ≈ int8 row x scale
NPY_HEADER_BYTES = 128  # the .npy v1.0 header of these arrays: written last, once the row count is known

# usearch 2.26's memory per vector. A node is its key (8 B) and level (2 B), the base layer's neighbour
# count and 2 x connectivity 4-byte slots, and per upper level a count and connectivity slots, the whole
# node rounded up to 64 B; a node reaches level l with probability connectivity^-l (`Index.stats
# .allocated_bytes` is the same sum before rounding). The lookups cost ~27 B per vector and ~41 B per slot
# of capacity (the next power of two above the count). Fitted to the resident memory (RSS) a fresh process
# gains building graphs of 20 k to 200 k random 384-d vectors (f32, i8, b1; connectivity 12, 16, 20, 32):
# within 2.5 % of it in every build (benchmarks/index_scale.py prints the same comparison at 100 k and
# 1 M). `Index.memory_usage` is not what is resident: it counts whole reserved arenas (16 MiB at first,
# then doubling), so it was 1.06x to 2.5x this estimate in those builds, near 1x only where the arenas
# were full.
NODE_HEAD_BYTES = 10
NODE_ALIGNMENT = 64
LOOKUP_BYTES_PER_VECTOR = 27
LOOKUP_BYTES_PER_SLOT = 41


# --- sizes ---


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"index.dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return dtype


def bytes_per_vector(dtype: str, dimension: int) -> int:
    """Bytes one vector takes inside the graph: 4, 2 or 1 per coordinate, or one bit (b1, packed)."""
    dimension = int(dimension)
    return {"f32": 4 * dimension, "f16": 2 * dimension, "i8": dimension, "b1": math.ceil(dimension / 8)}[
        check_dtype(dtype)
    ]


def node_bytes(connectivity: int) -> float:
    """Expected bytes of one HNSW node (key, level, neighbour lists on every level it reaches), each node
    rounded up to NODE_ALIGNMENT."""
    m = int(connectivity)
    if m < 2:
        raise ValueError(f"index.connectivity {m}: must be at least 2")
    base = NODE_HEAD_BYTES + 4 + 8 * m
    expected, level, reach = 0.0, 0, 1.0
    while reach > 1e-12:
        size = base + level * (4 + 4 * m)
        expected += reach * (1 - 1 / m) * math.ceil(size / NODE_ALIGNMENT) * NODE_ALIGNMENT
        level, reach = level + 1, reach / m
    return expected


def capacity_slots(count: int) -> int:
    """The graph's capacity once it holds `count` vectors: usearch grows it to the next power of two."""
    return 0 if count <= 0 else 1 << (int(count) - 1).bit_length()


def estimated_ram_bytes(count: int, dimension: int, dtype: str, connectivity: int) -> int:
    """Resident bytes of a graph of `count` vectors, while it is built and when it is served with every
    page touched: vectors, nodes and lookups (see the measurements above). A b1 graph's int8 rescoring
    copy is not counted: it is memory-mapped and only its candidates' rows are read."""
    count = int(count)
    per_vector = bytes_per_vector(dtype, dimension) + node_bytes(connectivity) + LOOKUP_BYTES_PER_VECTOR
    return round(count * per_vector + LOOKUP_BYTES_PER_SLOT * capacity_slots(count))


def estimated_disk_bytes(count: int, dimension: int, dtype: str, connectivity: int) -> int:
    """Bytes on disk: the saved graph (vectors and unrounded nodes, ~2 B more per vector for its level
    table) and, for b1, the rescoring files (an int8 row and a float32 scale per vector)."""
    m = int(connectivity)
    node = NODE_HEAD_BYTES + 4 + 8 * m + (4 + 4 * m) / (m - 1)  # unrounded: levels past 0 add 1/(m-1)
    graph = int(count) * (bytes_per_vector(dtype, dimension) + node + 2)
    rescore = int(count) * (int(dimension) + 4) + 2 * NPY_HEADER_BYTES if dtype == "b1" else 0
    return round(graph + rescore)


def choose_dtype(
    count: int, dimension: int, connectivity: int, budget_gb: float | None, dtype: str = AUTO
) -> str:
    """The graph's vector type. `dtype` "auto": the most precise of f32 > i8 > b1 whose estimated RAM fits
    `budget_gb` (GiB), or i8 without a budget; an explicit dtype is kept if it fits. A ValueError naming
    index.memory_budget_gb when it does not fit, or when nothing does."""
    if dtype != AUTO:
        check_dtype(dtype)
    if budget_gb is None:
        return DEFAULT_DTYPE if dtype == AUTO else dtype
    if isinstance(budget_gb, bool) or not isinstance(budget_gb, int | float) or not budget_gb > 0:
        raise ValueError(f"{BUDGET_KEY} {budget_gb!r}: expected a positive number of GiB")
    needs = {d: estimated_ram_bytes(count, dimension, d, connectivity) / GIB for d in AUTO_ORDER}
    shown = ", ".join(f"{d} {gb:.2f}" for d, gb in needs.items())
    what = f"{int(count):,} vectors of {int(dimension)} dimensions at connectivity {int(connectivity)}"
    if dtype != AUTO:
        need = estimated_ram_bytes(count, dimension, dtype, connectivity) / GIB
        if need > budget_gb:
            raise ValueError(
                f"{BUDGET_KEY} is {budget_gb:g} GiB, but index.dtype {dtype} needs ~{need:.2f} GiB for "
                f"{what} (f32/i8/b1 need: {shown} GiB): raise the budget or set index.dtype to auto"
            )
        return dtype
    for candidate in AUTO_ORDER:
        if needs[candidate] <= budget_gb:
            return candidate
    raise ValueError(
        f"{BUDGET_KEY} is {budget_gb:g} GiB, but even b1 needs ~{needs['b1']:.2f} GiB for {what} "
        f"(f32/i8/b1 need: {shown} GiB): raise the budget or lower index.connectivity"
    )


# --- the graph ---


def new_graph(dimension: int, dtype: str, connectivity: int, expansion_add: int, expansion_search: int):
    """An empty usearch graph for `dtype`: cosine over f32/f16/i8, Hamming over packed bits for b1
    (`dimension` bits; feed it `graph_vectors`)."""
    from usearch.index import Index

    check_dtype(dtype)
    return Index(
        ndim=int(dimension),
        metric="hamming" if dtype == "b1" else "cos",
        dtype=dtype,
        connectivity=int(connectivity),
        expansion_add=int(expansion_add),
        expansion_search=int(expansion_search),
    )


def int8_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 rows, float32 scale per row) with row ≈ int8 x scale: each row's largest |component| maps to
    127, the rest rounded. A zero row stays zero (scale 0)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if not vectors.size:
        return np.zeros(vectors.shape, np.int8), np.zeros(len(vectors), np.float32)
    # one batch-sized temporary: the build quantizes batch by batch beside a large graph
    largest = np.maximum(vectors.max(axis=1), -vectors.min(axis=1))
    scales = (largest / np.float32(127)).astype(np.float32)
    scaled = np.divide(vectors, np.where(scales > 0, scales, np.float32(1))[:, None])
    np.rint(scaled, out=scaled)
    np.clip(scaled, -127, 127, out=scaled)
    values = scaled.astype(np.int8)
    return values, scales


def graph_vectors(vectors: np.ndarray, dtype: str) -> np.ndarray:
    """float32 vectors (rows) -> what `graph.add` takes for `dtype`: float32, float16, int8 scaled per
    row (`int8_rows`), or for b1 the signs packed 8 to a byte (bit set where the component is > 0)."""
    check_dtype(dtype)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array (rows), not of shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors hold NaN or infinity: the encoder's output is broken")
    if dtype == "b1":
        return np.packbits(vectors > 0, axis=1)
    if dtype == "i8":
        return int8_rows(vectors)[0]
    return np.ascontiguousarray(vectors, dtype=np.float16 if dtype == "f16" else np.float32)


def graph_query(query: np.ndarray, dtype: str) -> np.ndarray:
    """One float32 query vector -> what `graph.search` takes for `dtype` (as `graph_vectors`)."""
    return graph_vectors(np.asarray(query, dtype=np.float32).reshape(1, -1), dtype)[0]


def search_graph(
    graph,
    query_vector: np.ndarray,
    k: int,
    dtype: str,
    rescore_store: RescoreStore | None = None,
    multiplier: int = RESCORE_MULTIPLIER,
    exact: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(keys, cosine scores) of the k nearest vectors to one float query, best first, ties by key.
    f32/f16/i8: 1 - the graph's cosine distance. b1: the graph's `multiplier` x k nearest by Hamming
    distance, re-ranked by cosine against the rescoring store's int8 vectors. `exact`: every stored
    vector compared instead of walking the graph (what the graph's approximation is measured against)."""
    check_dtype(dtype)
    query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
    if query.shape[0] != int(graph.ndim):
        raise ValueError(f"query has {query.shape[0]} dimensions, the graph {int(graph.ndim)}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if dtype == "b1":
        if rescore_store is None:
            raise ValueError("a b1 graph needs its rescoring store (Hamming distances are not scores)")
        candidates = graph.search(graph_query(query, dtype), k * max(1, int(multiplier)), exact=exact).keys
        return rescore_store.rescore(query, candidates, k)
    matches = graph.search(graph_query(query, dtype), k, exact=exact)
    keys = np.asarray(matches.keys, dtype=np.int64)
    scores = (1 - np.asarray(matches.distances, dtype=np.float32)).astype(np.float32)
    order = np.lexsort((keys, -scores))
    return keys[order], scores[order]


# --- b1's rescoring store ---


def npy_header(dtype: np.dtype, shape: Sequence[int]) -> bytes:
    """A .npy v1.0 header of exactly NPY_HEADER_BYTES for an array of `dtype` and `shape`."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    np.lib.format.write_array_header_1_0(buffer, {**header, "shape": tuple(int(s) for s in shape)})
    data = buffer.getvalue()
    if len(data) != NPY_HEADER_BYTES:  # only for shapes of absurd size
        raise ValueError(f"a .npy header of shape {tuple(shape)} takes {len(data)} bytes")
    return data


class RescoreWriter:
    """b1's int8 rescoring vectors, written batch by batch as the graph is built: RESCORE_VECTORS (int8
    rows) and RESCORE_SCALES (float32 per row) in `folder`. Each file is streamed to a temporary and moved
    into place by `close`; leaving the `with` block on an error (or `abort`) leaves neither file."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.count, self.dimension = 0, None
        self.stack = contextlib.ExitStack()
        self.files = {}
        try:
            for name in (RESCORE_VECTORS, RESCORE_SCALES):
                temp = self.stack.enter_context(atomic_path(self.folder / name))
                # open across add() calls; the stack closes it before the rename
                self.files[name] = self.stack.enter_context(open(temp, "wb"))  # noqa: SIM115
                self.files[name].write(bytes(NPY_HEADER_BYTES))  # the real header once the count is known
        except BaseException:
            self.stack.close()
            raise

    def add(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or (self.dimension is not None and vectors.shape[1] != self.dimension):
            want = f"(rows, {self.dimension})" if self.dimension is not None else "(rows, dimension)"
            raise ValueError(f"{self.folder / RESCORE_VECTORS}: a batch of shape {vectors.shape}, not {want}")
        if not np.isfinite(vectors).all():
            raise ValueError(f"{self.folder / RESCORE_VECTORS}: the batch holds NaN or infinity")
        self.dimension = vectors.shape[1]
        values, scales = int8_rows(vectors)
        self.files[RESCORE_VECTORS].write(values.tobytes())
        self.files[RESCORE_SCALES].write(scales.astype("<f4").tobytes())
        self.count += len(vectors)

    def close(self) -> int:
        """Write the headers and move both files into place; the number of vectors written."""
        if self.dimension is None:
            self.abort()
            raise ValueError(f"{self.folder}: no vectors were added to the rescoring store")
        headers = {
            RESCORE_VECTORS: npy_header(np.int8, (self.count, self.dimension)),
            RESCORE_SCALES: npy_header(np.dtype("<f4"), (self.count,)),
        }
        for name, header in headers.items():
            self.files[name].seek(0)
            self.files[name].write(header)
        self.stack.close()  # the files closed, then each temporary renamed into place
        return self.count

    def abort(self) -> None:
        """Drop both temporaries: neither file appears."""
        self.stack.__exit__(RuntimeError, RuntimeError("rescoring store aborted"), None)

    def __enter__(self) -> RescoreWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.stack.__exit__(kind, error, traceback)


class RescoreStore:
    """b1's rescoring vectors opened memory-mapped; the two files checked against each other."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.vectors = self.load(RESCORE_VECTORS, np.int8, 2)
        self.scales = self.load(RESCORE_SCALES, np.float32, 1)
        if len(self.scales) != len(self.vectors):
            raise ValueError(
                f"{self.folder / RESCORE_SCALES}: {len(self.scales)} scales, but {RESCORE_VECTORS} holds "
                f"{len(self.vectors)} vectors; rebuild the index"
            )
        self.count, self.dimension = self.vectors.shape

    def load(self, name: str, dtype, ndim: int) -> np.ndarray:
        path = self.folder / name
        if not path.is_file():
            raise ValueError(f"{path}: missing; rebuild the index")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable .npy file ({err}); rebuild the index") from None
        if array.dtype != dtype or array.ndim != ndim:
            raise ValueError(
                f"{path}: {array.dtype} of shape {array.shape}, expected {np.dtype(dtype)} with {ndim} "
                "dimension(s); rebuild the index"
            )
        return array

    def rescore(self, query: np.ndarray, candidate_keys, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, cosine of the query with each candidate's dequantized vector), the k best first, ties by
        key."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension:
            raise ValueError(f"query has {query.shape[0]} dimensions, the rescoring store {self.dimension}")
        keys = np.unique(np.asarray(candidate_keys, dtype=np.int64))
        if len(keys) and (keys[0] < 0 or keys[-1] >= self.count):
            raise ValueError(f"candidate keys outside 0..{self.count - 1} of {self.folder / RESCORE_VECTORS}")
        stored = self.vectors[keys].astype(np.float32) * self.scales[keys][:, None]
        norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(query)
        scores = np.where(norms > 0, stored @ query / np.where(norms > 0, norms, 1), 0).astype(np.float32)
        order = np.lexsort((keys, -scores))[: int(k)]
        return keys[order], scores[order]
