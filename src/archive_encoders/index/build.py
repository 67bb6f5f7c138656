"""Building the search index (rule build_index): the recommended variant's embeddings of the whole corpus
in a usearch HNSW graph, and BM25 over the same texts, in a self-contained folder (what a search engine
deploys; layout in search.py) that serves the report's verdict: dense, BM25, or their hybrid with the
fusion and weight the report recorded.

`build_index` encodes every chunk, builds and measures the graph (build time, RAM, disk per million
chunks, ANN recall@10 against exact search, end-to-end query latency) and writes the folder atomically.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders import paths
from archive_encoders.config import default_seed, with_defaults
from archive_encoders.corpus.manifest import read_text_chunks, scan_documents
from archive_encoders.index.search import (
    BM25_DIR,
    CHUNKS,
    DEFAULT_FUSION,
    ENCODER_DIR,
    FORMAT,
    MANIFEST,
    SERVED_RETRIEVER,
    VECTORS,
    K,
    SearchIndex,
    encoder_files,
    fingerprint,
    open_encoder,
    script_of,
    served_variant,
    sha256_of_ids,
)
from archive_encoders.io import atomic_dir, read_json, write_json, write_parquet
from archive_encoders.system import cpu_flags, cpu_model, peak_rss_mb, size_mb
from archive_encoders.variants import variant as variant_entry

log = logging.getLogger(__name__)


# --- which files make up an encoder, and their fingerprint ---


# --- the corpus side ---


def read_corpus(corpus: str | os.PathLike, snippet_chars: int):
    """(texts, metadata frame: row, chunk_id, doc_id, title, snippet) of every chunk of the corpus."""
    chunks = read_text_chunks(corpus, ["chunk_id", "doc_id", "text"])
    titles = scan_documents(corpus).select("doc_id", "title").collect().unique("doc_id", keep="first")
    chunks = chunks.join(titles, on="doc_id", how="left", maintain_order="left")
    if chunks.is_empty():
        raise ValueError(f"{corpus}: no chunks to index")
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


def script_shares(texts: Sequence[str], seed: int, sample: int = 2000) -> dict[str, float]:
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
    corpus: str | os.PathLike,
    out_dir: str | os.PathLike,
    report_path: str | os.PathLike,
    index_settings: Mapping[str, Any] | None = None,
    threads: int | None = None,
    seed: int | None = None,
    languages: Sequence[str] | None = None,
) -> dict:
    """Index the corpus (its manifest) with the recommendation's variant and with BM25 (the analyzer of
    `languages`, default clean.languages, as evaluate_lexical); write the folder and the index report."""
    from archive_encoders.datasets.text_analysis import Analyzer
    from archive_encoders.evaluate.lexical import BM25Index

    settings = with_defaults("index", index_settings)
    seed = default_seed(seed)
    languages = list(languages or with_defaults("clean", None)["languages"])
    rec, variant, artefact = served_encoder(recommendation_path)
    retriever, fusion = served_retriever(recommendation_path)
    texts, meta = read_corpus(corpus, int(settings["snippet_chars"]))
    with atomic_dir(out_dir) as tmp:
        # 1. the query encoder, copied into the folder
        encoder_dir = tmp / ENCODER_DIR
        encoder_dir.mkdir()
        for path in encoder_files(variant, artefact):
            shutil.copy2(path, encoder_dir / path.name)
        encoder = open_encoder(variant, encoder_dir, threads)
        # 2. every chunk encoded, the graph built
        started = time.perf_counter()
        vectors = encoder.encode_passages(texts, batch_size=int(settings["batch_size"]))
        timings = {"encode_s": time.perf_counter() - started, "rss_before_graph_mb": peak_rss_mb()}
        graph = new_usearch_index(vectors.shape[1], settings)
        started = time.perf_counter()
        graph.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=int(threads or 0))
        timings["graph_build_s"] = time.perf_counter() - started
        graph.save(str(tmp / VECTORS))
        started = time.perf_counter()
        BM25Index(texts, Analyzer(languages)).save(tmp / BM25_DIR)
        timings["bm25_build_s"] = time.perf_counter() - started
        # 3. metadata and the manifest that ties them together
        write_parquet(meta, tmp / CHUNKS)
        manifest = {
            "format": FORMAT,
            "model": rec["model"],
            "method": rec["method"],
            "variant": variant,
            "recommended_variant": rec["variant"],
            "recommended_retriever": rec.get("retriever"),
            "retriever": retriever,
            "fusion": fusion,
            "bm25": {"dir": BM25_DIR, "languages": languages},
            "encoder_fingerprint": fingerprint(variant, encoder_dir),
            "dimension": int(vectors.shape[1]),
            "metric": "cos",
            "dtype": settings["dtype"],
            "count": int(len(vectors)),
            "corpus": {
                "chunks": str(corpus),
                "chunk_ids_sha256": sha256_of_ids(meta["chunk_id"]),
                "documents": int(meta["doc_id"].n_unique()),
            },
            "scripts": script_shares(texts, seed=seed),
            "settings": dict(settings),
        }
        write_json(tmp / MANIFEST, manifest)
        # 4. measured as it will be served
        queries = recall_queries(texts, int(settings["recall_queries"]), seed)
        index = SearchIndex(tmp, threads=threads)
        report = index_report(manifest, tmp, graph, timings, threads)
        report |= {"index_dir": str(out_dir), "ann": ann_recall(index, vectors, queries)}
        report["query_latency_ms"] = query_latency(index, queries)
    write_json(report_path, report)
    log.info("index of %d chunks: %s", len(vectors), report)
    return report


def served_encoder(recommendation_path: str | os.PathLike) -> tuple[dict, str, Path]:
    """The recommendation's dense row, the variant that serves it and the folder it is served from."""
    recommendation = read_json(recommendation_path)
    rec = recommendation.get("index")  # the dense row: the recommendation, a hybrid's half, or for BM25
    if not rec or not recommendation.get("artefact"):
        raise ValueError(f"{recommendation_path}: no dense variant to index (the report found no usable row)")
    rec = {**rec, "retriever": recommendation.get("retriever")}
    variant = served_variant(rec["variant"])
    artefact = Path(recommendation["artefact"])
    if variant != rec["variant"]:  # torch: serve its ONNX export, same model and method
        artefact = Path(paths.ARTEFACTS[variant_entry(variant).artefact].format(**rec))
    return rec, variant, artefact


def served_retriever(recommendation_path: str | os.PathLike) -> tuple[str, dict]:
    """(the retriever an index serves by default, the fusion {method, weight} its hybrid uses): the
    recommendation's own for a hybrid, else reciprocal rank (needs no weight)."""
    recommendation = read_json(recommendation_path)
    name = recommendation.get("retriever") or "dense"
    if name not in SERVED_RETRIEVER:
        raise ValueError(
            f"{recommendation_path}: retriever {name!r}, expected one of {list(SERVED_RETRIEVER)}"
        )
    retriever = SERVED_RETRIEVER[name]
    if retriever != "hybrid":
        return retriever, dict(DEFAULT_FUSION)
    fusion = recommendation.get("fusion") or {"method": name.removeprefix("hybrid-"), "weight": None}
    if fusion["method"] == "weighted" and fusion.get("weight") is None:
        raise ValueError(
            f"{recommendation_path}: recommends {name} but records no fusion weight; rebuild the report"
        )
    return retriever, {"method": fusion["method"], "weight": fusion.get("weight")}


def index_report(manifest: Mapping[str, Any], folder: Path, graph, timings: Mapping[str, float], threads):
    """What the build measured, and the same per million chunks (the archive-scale estimate)."""
    n = manifest["count"]
    disk_mb, metadata_mb = size_mb(folder / VECTORS), size_mb(folder / CHUNKS)
    memory_mb = graph.memory_usage / 2**20
    return {
        **{k: manifest[k] for k in ("model", "method", "variant", "recommended_variant", "dimension")},
        **{k: manifest[k] for k in ("dtype", "count", "retriever", "fusion")},
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "threads": threads,
        "measured": {
            "chunks": n,
            "encode_s": round(timings["encode_s"], 3),
            "graph_build_s": round(timings["graph_build_s"], 3),
            "bm25_build_s": round(timings["bm25_build_s"], 3),
            "bm25_disk_mb": round(size_mb(folder / BM25_DIR), 4),
            "index_ram_mb": round(memory_mb, 4),
            "index_disk_mb": round(disk_mb, 4),
            "metadata_disk_mb": round(metadata_mb, 4),
            "encoder_disk_mb": round(size_mb(folder / ENCODER_DIR), 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_before_graph_mb": round(timings["rss_before_graph_mb"], 1),
        },
        # linear in the number of chunks: encoding and storage are; HNSW insertion grows ~ n log n,
        # so the build time is a lower bound
        "per_million_chunks": {
            "encode_hours": round(timings["encode_s"] / n * 1e6 / 3600, 4),
            "graph_build_hours_lower_bound": round(timings["graph_build_s"] / n * 1e6 / 3600, 4),
            "index_ram_gb": round(memory_mb / n * 1e6 / 1024, 4),
            "index_disk_gb": round(disk_mb / n * 1e6 / 1024, 4),
            "metadata_disk_gb": round(metadata_mb / n * 1e6 / 1024, 4),
        },
    }


def recall_queries(texts: Sequence[str], n: int, seed: int) -> list[str]:
    """Query-length heads of a seeded sample of chunks (what recall and latency are measured on)."""
    from archive_encoders.sampling import query_like

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
