"""Building the search index (rule build_index): the recommended variant's embeddings of the whole corpus
in a usearch HNSW graph, and BM25 over the same texts, in a self-contained folder (what a search engine
deploys; layout in search.py) that serves the report's verdict: dense, BM25, or their hybrid with the
fusion and weight the report recorded.

The corpus is encoded before, one job per shard (rule encode_shard, encoders/shard_embeddings.py);
`build_index` streams those vectors in, shard by shard, builds and measures the graph (build time, RAM,
disk per million chunks, ANN recall@10 against exact search, end-to-end query latency) and writes the
folder atomically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders import paths
from archive_encoders.config import default_seed, with_defaults
from archive_encoders.corpus.manifest import read_manifest, scan_chunk_shards, scan_documents
from archive_encoders.encoders.shard_embeddings import ShardEmbeddings, by_shard, same_encoder
from archive_encoders.index.metadata import IdFingerprint, MetadataWriter
from archive_encoders.index.search import (
    BM25_DIR,
    CHUNKS,
    DEFAULT_FUSION,
    ENCODER_DIR,
    FORMAT,
    MANIFEST,
    SERVED_AS,
    SERVED_RETRIEVER,
    VECTORS,
    K,
    SearchIndex,
    encoder_files,
    fingerprint,
    open_encoder,
    script_of,
    served_variant,
)
from archive_encoders.index.storage import (
    RESCORE_SCALES,
    RESCORE_VECTORS,
    RescoreWriter,
    choose_dtype,
    graph_vectors,
    new_graph,
)
from archive_encoders.io import atomic_dir, read_json, write_json
from archive_encoders.system import cpu_flags, cpu_model, peak_rss_mb, size_mb
from archive_encoders.variants import variant as variant_entry

log = logging.getLogger(__name__)


# --- the corpus side, one shard at a time ---

BATCH_ROWS = 8192  # chunks encoded, added and written per step: what the build holds besides the graph
SCRIPT_SAMPLE = 2000  # texts the script shares are counted on


def corpus_batches(corpus: str | os.PathLike, rows: int = BATCH_ROWS) -> Iterator[tuple[str, pl.DataFrame]]:
    """(shard name, chunks) of the corpus's non-empty chunks (chunk_id, doc_id, title, text), `rows` at a
    time, one shard read at a time: the build never holds the whole corpus's texts."""
    titles = scan_documents(corpus).select("doc_id", "title").unique("doc_id", keep="first").collect()
    names = [entry["shard"] for entry in read_manifest(corpus)["shards"]]
    for name, shard in zip(names, scan_chunk_shards(corpus), strict=True):
        frame = (
            shard.select("chunk_id", "doc_id", "text")
            .filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
            .collect()
            .join(titles, on="doc_id", how="left", maintain_order="left")
        )
        for start in range(0, frame.height, rows):
            yield name, frame.slice(start, rows)


def metadata_rows(batch: pl.DataFrame, first_row: int, snippet_chars: int) -> pl.DataFrame:
    """chunks.parquet's rows for a batch whose first chunk is row `first_row` of the index."""
    return batch.select(
        pl.int_range(first_row, first_row + batch.height, dtype=pl.UInt64).alias("row"),
        "chunk_id",
        "doc_id",
        pl.col("title").fill_null("").cast(pl.String),
        pl.col("text")
        .map_elements(lambda t: snippet(t, snippet_chars), return_dtype=pl.String)
        .alias("snippet"),
    )


def snippet(text: str, chars: int) -> str:
    """The text's start, whitespace collapsed, cut at a word boundary within `chars`."""
    flat = " ".join(text.split())
    if len(flat) <= chars:
        return flat
    cut = flat[:chars].rsplit(" ", 1)[0]
    return (cut or flat[:chars]) + "…"


def script_shares(texts: Sequence[str], seed: int, sample: int = SCRIPT_SAMPLE) -> dict[str, float]:
    """Share of letters per script over a sample of texts."""
    rng = random.Random(seed)
    picked = texts if len(texts) <= sample else rng.sample(list(texts), sample)
    counts = Counter(s for t in picked for s in map(script_of, t) if s)
    total = sum(counts.values()) or 1
    return {s: round(c / total, 4) for s, c in counts.most_common()}


class Reservoir:
    """A seeded uniform sample of `size` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.rng, self.items, self.seen = size, random.Random(seed), [], 0

    def offer(self, items: Iterable[Any]) -> None:
        for item in items:
            self.seen += 1
            if len(self.items) < self.size:
                self.items.append(item)
            elif (j := self.rng.randrange(self.seen)) < self.size:
                self.items[j] = item


class TokenIds:
    """BM25's view of the corpus built batch by batch: each passage's analysed tokens as ids of one
    growing vocabulary (ids in order of first appearance, as bm25s numbers them), never the texts."""

    def __init__(self, analyzer) -> None:
        self.analyzer, self.vocab, self.ids = analyzer, {}, []

    def add(self, texts: Sequence[str]) -> None:
        vocab = self.vocab
        for tokens in self.analyzer.tokens_many(texts):
            self.ids.append([vocab.setdefault(t, len(vocab)) for t in tokens])


# --- build ---


def corpus_encoding(recommendation_path: str | os.PathLike, device: str = "auto") -> dict | None:
    """{model, method, variant} the index's corpus is encoded with (rule encode_shard), None when the
    report recommends no dense row: the served variant, except that with `device: cuda` an ONNX FP32 row
    is encoded by its PyTorch model on the GPU (the export is gated at cosine 0.9999 to it; its queries
    are still encoded by the ONNX export). Every other variant's vectors come from that variant itself."""
    try:
        rec, variant, _ = served_encoder(recommendation_path)
    except (ValueError, KeyError, TypeError, OSError):
        return None  # build_index says why, with the file named
    if device == "cuda" and variant == SERVED_AS["torch"]:
        variant = "torch"
    return {"model": rec["model"], "method": rec["method"], "variant": variant}


def build_index(
    recommendation_path: str | os.PathLike,
    corpus: str | os.PathLike,
    embeddings: Mapping[str, Sequence[str]],
    out_dir: str | os.PathLike,
    report_path: str | os.PathLike,
    index_settings: Mapping[str, Any] | None = None,
    threads: int | None = None,
    seed: int | None = None,
    languages: Sequence[str] | None = None,
) -> dict:
    """Index the corpus (its manifest) from its shard embeddings (`embeddings`: the lists of `vectors`,
    `ids` and `meta` files encode_shard wrote, one per shard) of the recommendation's variant, and with
    BM25 (the analyzer of `languages`, default clean.languages, as evaluate_lexical); write the folder and
    the index report."""
    from archive_encoders.datasets.text_analysis import Analyzer
    from archive_encoders.evaluate.lexical import BM25Index

    settings = with_defaults("index", index_settings)
    seed = default_seed(seed)
    languages = list(languages or with_defaults("clean", None)["languages"])
    rec, variant, artefact = served_encoder(recommendation_path)
    retriever, fusion = served_retriever(recommendation_path)
    shards = by_shard(embeddings["vectors"], embeddings["ids"], embeddings["meta"])
    encoded = check_encoding(shards, rec, variant)
    with atomic_dir(out_dir) as tmp:
        # 1. the query encoder, copied into the folder
        encoder_dir = tmp / ENCODER_DIR
        encoder_dir.mkdir()
        for path in encoder_files(variant, artefact):
            shutil.copy2(path, encoder_dir / path.name)
        encoder = open_encoder(variant, encoder_dir, threads)
        if int(encoder.dimension) != encoded["dimension"]:
            raise ValueError(
                f"the shard embeddings are {encoded['dimension']}-d, {variant}'s encoder gives "
                f"{encoder.dimension}-d: they are of another export; re-encode the shards"
            )
        # 2. one pass, batch by batch: the shard's vectors added to the graph, metadata written, BM25
        # tokens kept; the vector type the memory budget allows, sized by the shards' rows (duplicates
        # included: an upper bound)
        rows = sum(int(s.meta["count"]) for s in shards.values())
        dtype = choose_dtype(
            rows,
            encoded["dimension"],
            settings["connectivity"],
            settings["memory_budget_gb"],
            settings["dtype"],
        )
        built = assemble(corpus, shards, tmp, settings, dtype, Analyzer(languages), threads, seed)
        graph, count = built["graph"], built["count"]
        graph.save(str(tmp / VECTORS))
        started = time.perf_counter()
        tokens = built["tokens"]
        BM25Index.from_token_ids(tokens.ids, tokens.vocab, tokens.analyzer).save(tmp / BM25_DIR)
        timings = {
            **built["timings"],
            "encode_s": sum(float(s.meta.get("encode_s") or 0.0) for s in shards.values()),
            "bm25_build_s": built["timings"]["tokenize_s"] + time.perf_counter() - started,
        }
        # 3. the manifest that ties them together
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
            "corpus_encoded_with": {
                "variant": encoded["variant"],
                "devices": sorted({str(s.meta.get("device")) for s in shards.values()}),
                "shards": len(shards),
            },
            "dimension": int(graph.ndim),
            "metric": "hamming, rescored by cosine" if dtype == "b1" else "cos",
            "dtype": dtype,
            "memory_budget_gb": settings["memory_budget_gb"],
            "count": count,
            "corpus": {
                "chunks": str(corpus),
                "chunk_ids_sha256": built["ids"].hexdigest(),
                "documents": len(built["documents"]),
            },
            "scripts": script_shares(built["sample"].items, seed=seed),
            "settings": dict(settings),
        }
        write_json(tmp / MANIFEST, manifest)
        # 4. measured as it will be served
        queries = recall_queries(built["sample"].items, int(settings["recall_queries"]))
        index = SearchIndex(tmp, threads=threads)
        report = index_report(manifest, tmp, graph, timings, threads)
        floats = np.memmap(built["floats"], dtype=np.float32, mode="r", shape=(count, int(graph.ndim)))
        report |= {"index_dir": str(out_dir), "ann": ann_recall(index, floats, queries)}
        del floats
        built["floats"].unlink()  # the float32 copy was for measuring recall only
        report["query_latency_ms"] = query_latency(index, queries)
    write_json(report_path, report)
    log.info("index of %d chunks: %s", count, report)
    return report


def check_encoding(shards: Mapping[str, ShardEmbeddings], rec: Mapping[str, Any], variant: str) -> dict:
    """The encoder the shard embeddings share, checked against the recommendation's model, method and
    served variant (or its PyTorch model for an ONNX FP32 row: corpus_encoding)."""
    if not shards:
        raise ValueError("no shard embeddings to index: the corpus has no shard")
    encoded = same_encoder(shards)
    accepted = {variant, "torch"} if variant == SERVED_AS["torch"] else {variant}
    if (encoded["model"], encoded["method"]) != (rec["model"], rec["method"]) or encoded[
        "variant"
    ] not in accepted:
        raise ValueError(
            f"the shard embeddings are of {encoded['model']}/{encoded['method']}/{encoded['variant']}, the "
            f"report recommends {rec['model']}/{rec['method']}/{variant}: re-encode the shards"
        )
    return encoded


def assemble(
    corpus, shards: Mapping[str, ShardEmbeddings], folder: Path, settings, dtype, analyzer, threads, seed
):
    """The streamed pass: each batch of the corpus's chunks finds its vectors in its shard's embeddings
    (a memory map) and is added to a new graph of `dtype` (b1: with their int8 copies for rescoring), its
    metadata appended to chunks.parquet, its BM25 tokens kept as ids, its float32 vectors appended to a
    scratch file (exact search for the recall check reads them back by block). Holds one shard's texts at
    a time, never the corpus's vectors."""
    graph, count = None, 0
    rescore = RescoreWriter(folder) if dtype == "b1" else contextlib.nullcontext()
    tokens, ids, documents = TokenIds(analyzer), IdFingerprint(), set()
    sample = Reservoir(max(SCRIPT_SAMPLE, int(settings["recall_queries"])), seed)
    timings = {"graph_build_s": 0.0, "tokenize_s": 0.0}
    floats = folder / ".float32_vectors"
    with open(floats, "wb") as float_file, MetadataWriter(folder / CHUNKS) as writer, rescore:
        for name, batch in corpus_batches(corpus):
            if name not in shards:
                raise ValueError(f"shard {name} of {corpus} has no embeddings: encode it (encode_shard)")
            texts = batch["text"].to_list()
            rows = shards[name].rows_of(batch["chunk_id"].to_list())
            vectors = np.asarray(shards[name].vectors[rows], dtype=np.float32)
            graph = graph or new_graph(vectors.shape[1], dtype, *graph_settings(settings))
            started = time.perf_counter()
            keys = np.arange(count, count + len(vectors), dtype=np.uint64)
            graph.add(keys, graph_vectors(vectors, dtype), threads=int(threads or 0))
            if dtype == "b1":
                rescore.add(vectors)
            timings["graph_build_s"] += time.perf_counter() - started
            float_file.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
            writer.write(metadata_rows(batch, count, int(settings["snippet_chars"])))
            started = time.perf_counter()
            tokens.add(texts)
            timings["tokenize_s"] += time.perf_counter() - started
            ids.update(batch["chunk_id"].to_list())
            documents.update(batch["doc_id"].unique().to_list())
            sample.offer(texts)
            count += len(vectors)
    if not count:
        raise ValueError(f"{corpus}: no chunks to index")
    timings["rss_before_graph_mb"] = peak_rss_mb()
    return {
        "graph": graph,
        "count": count,
        "tokens": tokens,
        "ids": ids,
        "documents": documents,
        "sample": sample,
        "floats": floats,
        "timings": timings,
    }


def graph_settings(settings: Mapping[str, Any]) -> tuple[int, int, int]:
    """(connectivity, expansion_add, expansion_search) of the index settings, for storage.new_graph."""
    return tuple(int(settings[k]) for k in ("connectivity", "expansion_add", "expansion_search"))


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
    # b1: the int8 copies its candidates are rescored with, memory-mapped (on disk, not in RAM)
    rescore_mb = sum(
        size_mb(folder / name) for name in (RESCORE_VECTORS, RESCORE_SCALES) if (folder / name).is_file()
    )
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
            "rescore_disk_mb": round(rescore_mb, 4),
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
            "index_disk_gb": round((disk_mb + rescore_mb) / n * 1e6 / 1024, 4),
            "metadata_disk_gb": round(metadata_mb / n * 1e6 / 1024, 4),
        },
    }


def recall_queries(sample: Sequence[str], n: int) -> list[str]:
    """Query-length heads of the first `n` texts of a seeded sample of chunks (what recall and latency
    are measured on)."""
    from archive_encoders.sampling import query_like

    return [q for q in (query_like(t) for t in sample[:n]) if q]


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int, block: int = 65536) -> np.ndarray:
    """Row numbers of each query's k best vectors by dot product, best first, ties by row: exact search
    read block by block (a memory map of any size), the same as a stable argsort over all rows."""
    best_keys = np.empty((len(queries), 0), dtype=np.int64)
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(vectors), block):
        scores = queries @ np.asarray(vectors[start : start + block], dtype=np.float32).T
        keys = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        scores, keys = np.hstack([best_scores, scores]), np.hstack([best_keys, keys])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores, best_keys = np.take_along_axis(scores, order, 1), np.take_along_axis(keys, order, 1)
    return best_keys


def ann_recall(index: SearchIndex, vectors: np.ndarray, queries: Sequence[str]) -> dict:
    """recall@10 of the HNSW search (b1: rescored, as served) against exact search over the same stored
    vectors (the graph's approximation) and against exact float32 search (graph and vector type
    together)."""
    q = index.encoder.encode_queries(list(queries))
    k = min(K, index.count)
    approx = [[row for row, _ in index.nearest(v, k)] for v in q]
    exact = [[row for row, _ in index.nearest(v, k, exact=True)] for v in q]
    floats = exact_top_k(q, vectors, k)

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
