"""The search index: the recommended variant's embeddings of the whole corpus in a usearch HNSW graph.

An index folder is self-contained (what a search engine deploys):

    index.json        model, method, variant, the encoder's fingerprint, corpus, dimension, dtype, settings
    vectors.usearch   the HNSW graph with the vectors (key = row of chunks.parquet)
    chunks.parquet    row, chunk_id, doc_id, title, snippet
    encoder/          the query encoder (the variant's files: graph or static vectors, tokenizer, config)

`build_index` (rule build_index) encodes every chunk, builds and measures the graph (build time, RAM,
disk per million chunks, ANN recall@10 against exact search, end-to-end query latency) and writes the
folder atomically. `SearchIndex` opens it torch-free (ONNX Runtime, OpenVINO or numpy) and refuses an
encoder that is not the one the index was built with.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .graph_encoder import CONFIG_FILE
from .io import atomic_dir, read_json, write_json
from .variants import variant as variant_entry

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "index.json"
VECTORS = "vectors.usearch"
CHUNKS = "chunks.parquet"
ENCODER_DIR = "encoder"
K = 10
# torch is not a serving runtime: its ONNX FP32 export gives the same vectors (gated at min cosine 0.9999)
SERVED_AS = {"torch": "onnx-fp32"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", CONFIG_FILE)


class SearchError(ValueError):
    """A request the index cannot serve: a damaged folder, an empty or unreadable query."""


class IndexMismatchError(SearchError):
    """A query encoder that is not the one the index was built with (its vectors are in another space)."""


# --- which files make up an encoder, and their fingerprint ---


def served_variant(variant: str) -> str:
    return SERVED_AS.get(variant, variant)


def encoder_files(variant: str, folder: str | os.PathLike) -> list[Path]:
    """The files a torch-free process needs to run `variant` from its artefact folder."""
    folder = Path(folder)
    entry = variant_entry(variant)
    if entry.runtime == "model2vec":
        names = ["model.safetensors", "config.json", "tokenizer.json", CONFIG_FILE]
    else:
        config = read_json(folder / CONFIG_FILE)
        model_file = config["files"][entry.file_key]
        names = [model_file, *TOKENIZER_FILES]
        if model_file.endswith(".xml"):
            names.append(model_file[: -len(".xml")] + ".bin")
        if (folder / (model_file + ".data")).is_file():
            names.append(model_file + ".data")
    return [folder / n for n in names if (folder / n).is_file()]


def fingerprint(variant: str, folder: str | os.PathLike) -> str:
    """sha256 over the encoder's files (names and bytes): two encoders agree only if they are the same."""
    digest = hashlib.sha256(variant.encode())
    for path in sorted(encoder_files(variant, folder), key=lambda p: p.name):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


# --- the corpus side ---


def read_corpus(chunks_path: str | os.PathLike, documents_path: str | os.PathLike, snippet_chars: int):
    """(texts, metadata frame: row, chunk_id, doc_id, title, snippet) of every chunk of the corpus."""
    import polars as pl

    from .samples import read_chunks

    chunks = read_chunks(chunks_path, ["chunk_id", "doc_id", "text"])
    from .corpus import scan_documents

    titles = scan_documents(documents_path).select("doc_id", "title").collect().unique("doc_id", keep="first")
    chunks = chunks.join(titles, on="doc_id", how="left", maintain_order="left")
    if chunks.is_empty():
        raise ValueError(f"{chunks_path}: no chunks to index")
    texts = chunks["text"].to_list()
    meta = chunks.select(
        pl.int_range(pl.len(), dtype=pl.UInt64).alias("row"),
        "chunk_id",
        "doc_id",
        pl.col("title").fill_null(""),
        pl.col("text")
        .map_elements(lambda t: snippet(t, snippet_chars), return_dtype=pl.String)
        .alias("snippet"),
    )
    return texts, meta


def snippet(text: str, chars: int) -> str:
    """The text's start, whitespace collapsed, cut at a word boundary within `chars`."""
    flat = " ".join(text.split())
    if len(flat) <= chars:
        return flat
    cut = flat[:chars].rsplit(" ", 1)[0]
    return (cut or flat[:chars]) + "…"


def script_of(char: str) -> str | None:
    """The writing system of a letter (Latin, Cyrillic, Greek, CJK, ...), None for anything else."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else None


def script_shares(texts: Sequence[str], sample: int = 2000, seed: int = 13) -> dict[str, float]:
    """Share of letters per script over a sample of texts."""
    rng = random.Random(seed)
    picked = texts if len(texts) <= sample else rng.sample(list(texts), sample)
    counts = Counter(s for t in picked for s in map(script_of, t) if s)
    total = sum(counts.values()) or 1
    return {s: round(c / total, 4) for s, c in counts.most_common()}


# --- build ---


def new_usearch_index(dimension: int, settings: Mapping[str, Any]):
    from usearch.index import Index

    return Index(
        ndim=int(dimension),
        metric="cos",
        dtype=settings["dtype"],
        connectivity=int(settings["connectivity"]),
        expansion_add=int(settings["expansion_add"]),
        expansion_search=int(settings["expansion_search"]),
    )


def build_index(
    recommendation_path: str | os.PathLike,
    chunks_path: str | os.PathLike,
    documents_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    report_path: str | os.PathLike,
    index_settings: Mapping[str, Any] | None = None,
    threads: int | None = None,
    seed: int = 13,
) -> dict:
    """Index the corpus with the recommendation's variant; write the folder and the index report."""
    from .config import with_defaults
    from .system import cpu_flags, cpu_model, peak_rss_mb, size_mb

    settings = with_defaults("index", index_settings)
    recommendation = read_json(recommendation_path)
    rec = recommendation.get("index")  # the dense row: the recommendation, a hybrid's half, or for BM25
    if not rec or not recommendation.get("artefact"):
        raise ValueError(f"{recommendation_path}: no dense variant to index (the report found no usable row)")
    variant = served_variant(rec["variant"])
    artefact = Path(recommendation["artefact"])
    if variant != rec["variant"]:  # torch: serve its ONNX export, same model and method
        from . import paths

        artefact = Path(paths.ARTEFACTS[variant_entry(variant).artefact].format(**rec))
    texts, meta = read_corpus(chunks_path, documents_path, int(settings["snippet_chars"]))

    with atomic_dir(out_dir) as tmp:
        encoder_dir = tmp / ENCODER_DIR
        encoder_dir.mkdir()
        for path in encoder_files(variant, artefact):
            shutil.copy2(path, encoder_dir / path.name)
        encoder = open_encoder(variant, encoder_dir, threads)

        started = time.perf_counter()
        vectors = encoder.encode_passages(texts, batch_size=int(settings["batch_size"]))
        encode_s = time.perf_counter() - started
        rss_before = peak_rss_mb()
        graph = new_usearch_index(vectors.shape[1], settings)
        started = time.perf_counter()
        graph.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=int(threads or 0))
        add_s = time.perf_counter() - started
        graph.save(str(tmp / VECTORS))
        from .io import write_parquet

        write_parquet(meta, tmp / CHUNKS)
        manifest = {
            "format": FORMAT,
            "model": rec["model"],
            "method": rec["method"],
            "variant": variant,
            "recommended_variant": rec["variant"],
            "recommended_retriever": recommendation.get("retriever"),
            "encoder_fingerprint": fingerprint(variant, encoder_dir),
            "dimension": int(vectors.shape[1]),
            "metric": "cos",
            "dtype": settings["dtype"],
            "count": int(len(vectors)),
            "corpus": {
                "chunks": str(chunks_path),
                "chunk_ids_sha256": hashlib.sha256("\n".join(meta["chunk_id"]).encode()).hexdigest(),
                "documents": int(meta["doc_id"].n_unique()),
            },
            "scripts": script_shares(texts, seed=seed),
            "settings": dict(settings),
        }
        write_json(tmp / MANIFEST, manifest)

        queries = recall_queries(texts, int(settings["recall_queries"]), seed)
        index = SearchIndex(tmp, threads=threads)
        quality = ann_recall(index, vectors, queries)
        latency = query_latency(index, queries)
        n = len(vectors)
        disk_mb = size_mb(tmp / VECTORS)
        memory_mb = graph.memory_usage / 2**20
        report = {
            **{k: manifest[k] for k in ("model", "method", "variant", "recommended_variant", "dimension")},
            **{k: manifest[k] for k in ("dtype", "count")},
            "index_dir": str(out_dir),
            "cpu": cpu_model(),
            "cpu_flags": cpu_flags(),
            "threads": threads,
            "measured": {
                "chunks": n,
                "encode_s": round(encode_s, 3),
                "graph_build_s": round(add_s, 3),
                "index_ram_mb": round(memory_mb, 4),
                "index_disk_mb": round(disk_mb, 4),
                "metadata_disk_mb": round(size_mb(tmp / CHUNKS), 4),
                "encoder_disk_mb": round(size_mb(encoder_dir), 2),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "rss_before_graph_mb": round(rss_before, 1),
            },
            # linear in the number of chunks: encoding and storage are; HNSW insertion grows ~ n log n,
            # so the build time is a lower bound
            "per_million_chunks": {
                "encode_hours": round(encode_s / n * 1e6 / 3600, 4),
                "graph_build_hours_lower_bound": round(add_s / n * 1e6 / 3600, 4),
                "index_ram_gb": round(memory_mb / n * 1e6 / 1024, 4),
                "index_disk_gb": round(disk_mb / n * 1e6 / 1024, 4),
                "metadata_disk_gb": round(size_mb(tmp / CHUNKS) / n * 1e6 / 1024, 4),
            },
            "ann": quality,
            "query_latency_ms": latency,
        }
    write_json(report_path, report)
    log.info("index of %d chunks: %s", n, report)
    return report


def recall_queries(texts: Sequence[str], n: int, seed: int) -> list[str]:
    """Query-length heads of a seeded sample of chunks (what recall and latency are measured on)."""
    from .samples import query_like

    rng = random.Random(seed)
    picked = rng.sample(range(len(texts)), min(n, len(texts)))
    return [q for q in (query_like(texts[i]) for i in picked) if q]


def ann_recall(index: SearchIndex, vectors: np.ndarray, queries: Sequence[str]) -> dict:
    """recall@10 of the HNSW search against exact search over the same stored vectors (the graph's
    approximation) and against exact float32 search (graph and vector type together)."""
    q = index.encoder.encode_queries(list(queries))
    k = min(K, index.count)
    approx = index.graph.search(q, k).keys
    exact = index.graph.search(q, k, exact=True).keys
    floats = np.argsort(-(q @ vectors.T), axis=1, kind="stable")[:, :k]

    def overlap(a, b) -> float:
        return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))

    return {
        "queries": len(queries),
        "k": k,
        "recall@10_vs_exact_same_dtype": round(overlap(approx, exact), 4),
        "recall@10_vs_exact_float32": round(overlap(approx, floats), 4),
    }


def query_latency(index: SearchIndex, queries: Sequence[str], warmup: int = 5) -> dict:
    """p50/p95 of one query end to end: encode, search, read the hits' metadata."""
    for q in queries[:warmup]:
        index.search(q, K)
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(q, K)
        times.append(time.perf_counter() - started)
    ms = np.asarray(times) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3)}


# --- search ---


def unknown_only(tokenizer, text: str) -> bool:
    """True when every token of `text` is the tokenizer's unknown token (or there is none)."""
    from .static_encoder import unknown_token_id

    unk = unknown_token_id(tokenizer)
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    return not ids or all(i == unk for i in ids)


def open_encoder(variant: str, folder: str | os.PathLike, threads: int | None = None):
    """The torch-free encoder of `variant` from a folder of its files."""
    entry = variant_entry(variant)
    if entry.runtime == "torch":
        raise SearchError(f"variant {variant!r} needs torch; an index serves {SERVED_AS['torch']} instead")
    from .encoders import load_encoder

    return load_encoder(variant, folder, {}, threads)


@dataclass
class Hit:
    rank: int
    score: float
    chunk_id: str
    doc_id: str
    title: str
    snippet: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SearchIndex:
    """An index folder opened for search: the graph memory-mapped, metadata and encoder loaded once.

    encoder_dir: a query encoder other than the bundled one (e.g. the artefact folder); it must be the
    very encoder the index was built with, or IndexMismatchError says which differs.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        encoder_dir: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> None:
        from usearch.index import Index

        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise SearchError(
                f"{self.folder}: not a search index (no {MANIFEST}); build it with the `index` target"
            )
        self.manifest = read_json(manifest_path)
        if self.manifest.get("format") != FORMAT:
            raise SearchError(
                f"{manifest_path}: index format {self.manifest.get('format')!r}, expected {FORMAT}"
            )
        self.variant = self.manifest["variant"]
        encoder_dir = Path(encoder_dir) if encoder_dir is not None else self.folder / ENCODER_DIR
        if encoder_dir != self.folder / ENCODER_DIR:
            self.check_encoder(encoder_dir)
        self.encoder = open_encoder(self.variant, encoder_dir, threads)
        if int(self.encoder.dimension) != int(self.manifest["dimension"]):
            raise IndexMismatchError(
                f"{encoder_dir}: encoder gives {self.encoder.dimension}-d vectors, the index holds "
                f"{self.manifest['dimension']}-d"
            )
        self.graph = Index.restore(str(self.folder / VECTORS), view=True)
        if self.graph is None or self.graph.size != self.manifest["count"]:
            raise SearchError(f"{self.folder / VECTORS}: missing or not the {self.manifest['count']} vectors")
        self._meta = None
        self.count = int(self.graph.size)

    def check_encoder(self, encoder_dir: Path) -> None:
        config_path = encoder_dir / CONFIG_FILE
        if not config_path.is_file():
            raise IndexMismatchError(f"{encoder_dir}: not an encoder folder (no {CONFIG_FILE})")
        config = read_json(config_path)
        theirs = (config.get("model"), config.get("method"))
        ours = (self.manifest["model"], self.manifest["method"])
        built = f"{ours[0]}/{ours[1]}/{self.variant}"
        if theirs != ours:
            raise IndexMismatchError(
                f"encoder {encoder_dir} is {theirs[0]}/{theirs[1]}, but the index {self.folder} was built "
                f"with {built}: its vectors live in another space; rebuild the index or use its own encoder"
            )
        if fingerprint(self.variant, encoder_dir) != self.manifest["encoder_fingerprint"]:
            raise IndexMismatchError(
                f"encoder {encoder_dir} ({self.variant}) is not the one the index {self.folder} was built "
                f"with ({built}: different weights, e.g. retrained or re-exported); rebuild the index or use "
                "its own encoder"
            )

    @property
    def metadata(self):
        if self._meta is None:
            import pyarrow.parquet as pq

            self._meta = pq.read_table(self.folder / CHUNKS).to_pydict()
        return self._meta

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding; a clear error for an empty query or one the model cannot read."""
        text = " ".join(str(query).split())
        if not text:
            raise SearchError("empty query: give some words to search for")
        if unknown_only(self.encoder.tokenizer, text):
            raise SearchError(
                f"the query {text!r} has no word the model ({self.manifest['model']}) knows: every token is "
                f"unknown to its vocabulary. Scripts in this index: {self.scripts_line()}"
            )
        return self.encoder.encode_queries([text])

    def scripts_line(self) -> str:
        shares = self.manifest.get("scripts") or {}
        return ", ".join(f"{s} {100 * v:.0f} %" for s, v in list(shares.items())[:4]) or "unknown"

    def script_warning(self, query: str) -> str | None:
        """A note when the query's letters are in a script the corpus (almost) never uses."""
        shares = self.manifest.get("scripts") or {}
        letters = Counter(s for s in map(script_of, query) if s)
        if not letters or not shares:
            return None
        main = letters.most_common(1)[0][0]
        if shares.get(main, 0.0) >= 0.01:
            return None
        return (
            f"the query is written in {main} script, which this index's texts hardly use "
            f"({self.scripts_line()}): the results are likely unrelated"
        )

    def search(self, query: str, k: int = K) -> list[Hit]:
        vector = self.query_vector(query)
        k = max(1, min(int(k), self.count))
        matches = self.graph.search(vector[0], k)
        meta = self.metadata
        hits = []
        for rank, (key, distance) in enumerate(zip(matches.keys, matches.distances, strict=True), start=1):
            row = int(key)
            hits.append(
                Hit(
                    rank=rank,
                    score=round(1.0 - float(distance), 4),
                    chunk_id=meta["chunk_id"][row],
                    doc_id=meta["doc_id"][row],
                    title=meta["title"][row],
                    snippet=meta["snippet"][row],
                )
            )
        return hits
