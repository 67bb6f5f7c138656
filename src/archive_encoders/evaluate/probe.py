"""Metadata tasks: can frozen document embeddings tell archive.org's labels apart?

Retrieval is not the only use of an encoder over a library: the seed study measured classification
beside it. A document's embedding is the mean of its first passages' embeddings (L2-normalised). For
each configured label (collection, subject, decade of `date`, creator) with enough classes and
examples: a logistic-regression probe and kNN (cosine), accuracy and macro-F1 with stratified
cross-validation, and k-means (k = number of classes) scored by V-measure. The majority-class accuracy
is reported beside them so a reader sees what chance looks like. A label without enough data is skipped
with the reason (the report lists it).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.vectors import unit

log = logging.getLogger(__name__)

LABELS = ("collection", "subject", "decade", "creator")
# archive.org collections every text sits in: they say nothing about the document
GENERIC_COLLECTIONS = {"texts", "opensource", "additional_collections", "folkscanomy", "inlibrary"}
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")


def label_values(items: pl.DataFrame, label: str) -> dict[str, str]:
    """doc_id -> one value of `label`; list fields take their most common specific value corpus-wide."""
    out: dict[str, str] = {}
    if label == "decade":
        for doc_id, date in items.select("identifier", "date").rows():
            match = _YEAR.search(date or "")
            if match:
                out[doc_id] = f"{int(match.group(1)) // 10 * 10}s"
        return out
    if label == "creator":
        for doc_id, creator in items.select("identifier", "creator").rows():
            first = (creator or "").split(";")[0].strip()
            if first:
                out[doc_id] = first
        return out
    if label not in items.columns:
        return out
    values = {
        doc_id: [v for v in (vals or []) if v not in GENERIC_COLLECTIONS]
        for doc_id, vals in items.select("identifier", label).rows()
    }
    counts = Counter(v for vals in values.values() for v in set(vals))
    for doc_id, vals in values.items():
        if vals:
            out[doc_id] = max(vals, key=lambda v: (counts[v], v))
    return out


def document_heads(chunks: pl.LazyFrame, doc_ids: Sequence[str], max_chunks: int) -> pl.LazyFrame:
    """The first `max_chunks` chunks of each of `doc_ids`: the filter goes into the Parquet scan, so the
    texts of the other chunks are never held."""
    wanted = pl.col("doc_id").is_in(list(doc_ids)) & (pl.col("chunk_index") < max_chunks)
    return chunks.filter(wanted).select("doc_id", "chunk_index", "text")


def document_embeddings(
    encoder, chunks: pl.DataFrame, doc_ids: Sequence[str], max_chunks: int, batch_size: int
) -> np.ndarray:
    """Mean of the first `max_chunks` passage embeddings of each document, L2-normalised."""
    wanted = chunks.filter(pl.col("doc_id").is_in(list(doc_ids)) & (pl.col("chunk_index") < max_chunks))
    wanted = wanted.sort("doc_id", "chunk_index")
    emb = encoder.encode_passages(wanted["text"].to_list(), batch_size=batch_size)
    position = {d: i for i, d in enumerate(doc_ids)}
    rows = np.array([position[d] for d in wanted["doc_id"]])
    sums = np.zeros((len(doc_ids), emb.shape[1]), dtype=np.float64)
    np.add.at(sums, rows, emb)
    return unit(sums)


def probe_label(
    x: np.ndarray, labels: Sequence[str], settings: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """Cross-validated logistic regression and kNN, k-means V-measure, for documents with these labels."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, v_measure_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    y = np.asarray(labels)
    counts = Counter(labels)
    folds = min(int(settings["folds"]), min(counts.values()))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    smallest_train_fold = len(y) - -(-len(y) // folds)  # what a fit sees, at the least
    neighbours = max(1, min(int(settings["knn_k"]), smallest_train_fold))
    classifiers = {
        "logreg": LogisticRegression(max_iter=2000, C=float(settings["logreg_c"])),
        "knn": KNeighborsClassifier(n_neighbors=neighbours, metric="cosine"),
    }
    out: dict[str, Any] = {
        "n_docs": len(y),
        "n_classes": len(counts),
        "folds": folds,
        "majority_accuracy": max(counts.values()) / len(y),
    }
    for name, model in classifiers.items():
        predicted = cross_val_predict(model, x, y, cv=cv)
        out[name] = {
            "accuracy": float(accuracy_score(y, predicted)),
            "macro_f1": float(f1_score(y, predicted, average="macro")),
        }
    clusters = KMeans(n_clusters=len(counts), n_init=10, random_state=seed).fit_predict(x)
    out["kmeans_v_measure"] = float(v_measure_score(y, clusters))
    return out


def usable_labels(
    values: Mapping[str, str], settings: Mapping[str, Any]
) -> tuple[dict[str, str], str | None]:
    """The documents whose class has enough examples, or a reason the label cannot be probed."""
    counts = Counter(values.values())
    kept = {d: v for d, v in values.items() if counts[v] >= settings["min_examples_per_class"]}
    n_classes = len(set(kept.values()))
    if n_classes < 2:
        return kept, (
            f"{n_classes} class(es) with >= {settings['min_examples_per_class']} documents "
            f"({len(values)} documents labelled, {len(counts)} classes)"
        )
    return kept, None


def run_probe(
    encoder,
    items: str,
    corpus: str,
    settings: Mapping[str, Any],
    seed: int,
    batch_size: int = 32,
) -> dict[str, Any]:
    """{"labels": {label: scores or {"skipped": reason}}, "max_chunks_per_doc"} over the kept documents."""
    item_frame = pl.read_parquet(items)
    from archive_encoders.corpus.manifest import scan_chunks, scan_documents

    doc_ids = sorted(scan_documents(corpus).select("doc_id").collect()["doc_id"].to_list())
    item_frame = item_frame.filter(pl.col("identifier").is_in(doc_ids))
    labelled = {
        label: usable_labels(label_values(item_frame, label), settings) for label in settings["labels"]
    }
    needed = sorted({d for kept, reason in labelled.values() if not reason for d in kept})
    embeddings = None
    if needed:
        chunk_frame = document_heads(scan_chunks(corpus), needed, settings["max_chunks_per_doc"]).collect()
        embeddings = document_embeddings(
            encoder, chunk_frame, needed, settings["max_chunks_per_doc"], batch_size
        )
    row = {d: i for i, d in enumerate(needed)}
    results: dict[str, Any] = {}
    for label, (kept, reason) in labelled.items():
        if reason:
            results[label] = {"skipped": reason}
            log.info("probe %s skipped: %s", label, reason)
            continue
        docs = sorted(kept)
        results[label] = probe_label(
            embeddings[[row[d] for d in docs]], [kept[d] for d in docs], settings, seed
        )
        log.info("probe %s: %s", label, results[label])
    return {"labels": results, "max_chunks_per_doc": settings["max_chunks_per_doc"]}
