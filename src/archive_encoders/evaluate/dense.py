"""Quality of every variant of one trained model, on every held-out query set, in one job.

Each variant is loaded once and encodes each distinct text once (encoders.MemoEncoder): each split's
corpus is encoded once and shared by the split's sets (a set's overrides, e.g. passages with the query
sentence cut out, are encoded on top), and a text met again (a distractor in both splits, a probe passage)
is not encoded again. For every set the job keeps the ranked run (top-100 per query), the per-query scores
and the mean with a bootstrap interval over source documents (stats.py), so the comparison stage can fuse
runs with BM25's and test differences paired. The val split is scored too: fusion weights are chosen
there, never on test. STS and the anisotropy diagnostic are measured per variant; the metadata probe
(probe.py) once, on the reference variant.

Output folder (paths.EVAL_DIR): <variant>.json, runs.parquet, per_query.parquet, probe.json.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders import paths
from archive_encoders.config import with_defaults
from archive_encoders.datasets import querysets as qs
from archive_encoders.encoders.loader import Encoder, load_encoder
from archive_encoders.encoders.memo import MemoEncoder
from archive_encoders.evaluate.metrics import (
    mean_random_pair_cosine,
    sts_spearman,
)
from archive_encoders.evaluate.ranking import Run, dense_run
from archive_encoders.evaluate.scoring import (
    Corpus,
    ScoredSet,
    _log_headline,
    judging_frame,
    read_sets,
    score_run,
    summarize_sets,
    test_corpus,
)
from archive_encoders.io import atomic_dir, write_json, write_parquet
from archive_encoders.variants import REFERENCE
from archive_encoders.variants import variant as variant_entry

log = logging.getLogger(__name__)


# --- corpora and sets ---


# --- dense retrieval ---


class EmbeddedCorpus:
    """A corpus encoded once by one encoder; a set's overrides are encoded on demand and swapped in."""

    def __init__(self, encoder: Encoder, corpus: Corpus, batch_size: int) -> None:
        self.encoder, self.corpus, self.batch_size = encoder, corpus, batch_size
        self.embeddings = encoder.encode_passages(corpus.texts, batch_size=batch_size)
        self.position = {cid: i for i, cid in enumerate(corpus.ids)}

    def for_set(self, query_set: qs.QuerySet) -> np.ndarray:
        if not query_set.overrides:
            return self.embeddings
        ids = [cid for cid in query_set.overrides if cid in self.position]
        emb = self.embeddings.copy()
        if ids:
            texts = [query_set.overrides[cid] for cid in ids]
            emb[[self.position[c] for c in ids]] = self.encoder.encode_passages(
                texts, batch_size=self.batch_size
            )
        return emb


def score_dense(
    encoder: Encoder, groups, batch_size: int, on_set=None
) -> tuple[list[ScoredSet], dict[str, np.ndarray]]:
    """Every set ranked by the encoder; returns the scored sets and each corpus's base embeddings.

    on_set(query_set, query_emb, corpus_emb, corpus_ids) sees each set's embeddings (e.g. compression)."""
    scored, embedded = [], {}
    for corpus, sets in groups:
        started = time.perf_counter()
        base = EmbeddedCorpus(encoder, corpus, batch_size)
        embedded[corpus.key] = base.embeddings
        documents = corpus.documents()
        for query_set in sets:
            queries = query_set.queries
            query_emb = encoder.encode_queries(queries["text"].to_list(), batch_size=batch_size)
            ranker = documents if query_set.level == qs.DOCUMENT_LEVEL else None
            corpus_emb = base.for_set(query_set)
            run = dense_run(queries["query_id"].to_list(), query_emb, corpus.ids, corpus_emb, ranker)
            scored.append(score_run(query_set, run))
            if on_set is not None:
                on_set(query_set, query_emb, corpus_emb, corpus.ids)
        log.info(
            "%s: %d passages, %d sets in %.1f s",
            corpus.key,
            len(corpus.ids),
            len(sets),
            time.perf_counter() - started,
        )
    return scored, embedded


# --- STS ---


def read_sts(path: str | os.PathLike, max_score: float = 5.0) -> pl.DataFrame:
    """Pairs with gold scores as (s1, s2, score in [0, 1]).

    CSV: three columns s1,s2,score; a header row is optional (detected by a non-numeric score field);
    quoted fields, CRLF line ends and a UTF-8 BOM are accepted. Parquet: columns s1, s2, score.
    """
    path = Path(path)
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame = pl.read_parquet(path)
        missing = {"s1", "s2", "score"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: Parquet STS set lacks column(s) {sorted(missing)}")
        frame = frame.select(
            pl.col("s1").cast(pl.String), pl.col("s2").cast(pl.String), pl.col("score").cast(pl.Float64)
        )
    else:
        frame = _read_sts_csv(path)
    if frame.is_empty():
        raise ValueError(f"{path}: no STS pairs")
    if frame["score"].is_null().any() or frame["s1"].is_null().any() or frame["s2"].is_null().any():
        raise ValueError(f"{path}: empty s1, s2 or score values")
    low, high = frame["score"].min(), frame["score"].max()
    if low < 0 or high > max_score:  # a wrong max_score would silently rescale; say so instead
        raise ValueError(f"{path}: gold scores span [{low}, {high}], outside [0, max_score={max_score}]")
    return frame.with_columns(pl.col("score") / max_score)


def _read_sts_csv(path: Path) -> pl.DataFrame:
    with open(path, encoding="utf-8-sig", newline="") as fh:  # newline="" lets csv handle CRLF and quotes
        rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    if rows and not _is_number(rows[0][-1]):
        header = [c.strip().lower() for c in rows[0]]
        if header != ["s1", "s2", "score"]:
            raise ValueError(f"{path}: header must be s1,s2,score (got {rows[0]})")
        rows = rows[1:]
    for line, row in enumerate(rows, start=1):
        if len(row) != 3 or not _is_number(row[2]):
            raise ValueError(f"{path}: data row {line} is not s1,s2,score: {row}")
    return pl.DataFrame(
        {"s1": [r[0] for r in rows], "s2": [r[1] for r in rows], "score": [float(r[2]) for r in rows]},
        schema={"s1": pl.String, "s2": pl.String, "score": pl.Float64},
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def score_sts(encoder: Encoder, sts_sets: Iterable[Mapping[str, Any]], batch_size: int) -> dict:
    """{name: {"spearman", "n"}}. STS is symmetric, so both sides get the query prefix (e5's convention)."""
    out = {}
    for entry in sts_sets:
        entry = with_defaults("evaluate.sts.*", entry)
        pairs = read_sts(entry["path"], float(entry["max_score"]))
        emb1 = encoder.encode_queries(pairs["s1"].to_list(), batch_size=batch_size)
        emb2 = encoder.encode_queries(pairs["s2"].to_list(), batch_size=batch_size)
        out[entry["name"]] = {
            "spearman": sts_spearman(emb1, emb2, pairs["score"].to_numpy()),
            "n": pairs.height,
        }
        log.info(
            "STS %s: spearman %s on %d pairs", entry["name"], out[entry["name"]]["spearman"], pairs.height
        )
    return out


# --- one variant, and the rule's entry point ---


def evaluate_variant(
    encoder: Encoder,
    groups,
    sts_sets: Iterable[Mapping[str, Any]],
    settings: Mapping[str, Any],
    seed: int,
    on_set=None,
) -> tuple[dict, list[ScoredSet], dict[str, np.ndarray]]:
    """(the eval JSON's measurement part, the scored sets, the base corpus embeddings) for one encoder."""
    started = time.perf_counter()
    scored, embedded = score_dense(encoder, groups, settings["batch_size"], on_set)
    test = embedded.get("test", next(iter(embedded.values()), np.zeros((0, 1))))
    result = {
        "query_sets": summarize_sets(scored, settings["bootstrap_samples"], seed),
        "sts": score_sts(encoder, sts_sets, settings["batch_size"]),
        "diagnostics": {"mean_random_pair_cosine": mean_random_pair_cosine(test, seed)},
        "eval_seconds": round(time.perf_counter() - started, 2),
    }
    return result, scored, embedded


def evaluate_model(
    artefacts: Mapping[str, str | os.PathLike],
    variants: Sequence[str],
    query_sets: str | os.PathLike,
    user_sets: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    model_spec: Mapping[str, Any],
    method: str,
    evaluate_settings: Mapping[str, Any],
    seed: int,
    threads: int | None = None,
    tables: Mapping[str, str | os.PathLike] | None = None,
    judging_queries: str | os.PathLike | None = None,
) -> dict[str, dict]:
    """Evaluate every variant of one model x method; write the folder paths.EVAL_DIR atomically.

    artefacts: {artefact kind: folder} (paths.ARTEFACTS); user_sets: imported user-judged sets.
    tables: what the reference variant's side measurements read: items and the corpus manifest for the
    metadata probe (probe.py), the corpus and splits for compression (its train passages).
    judging_queries: a team's queries (datasets/team_queries.py), ranked over the test passages by every
    variant into paths.JUDGING_RUNS for the judging pool.
    """
    tables = dict(tables or {})
    settings = with_defaults("evaluate", evaluate_settings)
    spec = with_defaults("models.*", model_spec)
    names = {"model": spec["name"], "method": method}
    groups = read_sets(query_sets, user_sets)
    results, per_query, runs, judged = {}, [], [], []
    team = pl.read_parquet(judging_queries) if judging_queries else None
    with atomic_dir(out_dir) as tmp:
        for variant in variants:
            folder = artefacts[variant_entry(variant).artefact]
            encoder = MemoEncoder(load_encoder(variant, folder, spec, threads))
            reference = variant == REFERENCE
            compression = CompressionRows.when_asked(encoder, tables, settings, seed) if reference else None
            measured, scored, _ = evaluate_variant(
                encoder, groups, settings["sts"], settings, seed, compression
            )
            results[variant] = {**names, "variant": variant, **measured}
            write_json(tmp / f"{variant}.json", results[variant])
            per_query.extend(s.per_query_frame(variant) for s in scored)
            runs.extend(s.run_frame(variant) for s in scored)
            if compression is not None:
                write_json(tmp / "compression.json", {**names, **compression.record()})
            if reference and {"items", "corpus"} <= set(tables):
                probe = run_probe_on(encoder, tables, settings, seed)
                write_json(tmp / "probe.json", {**names, "variant": variant, **probe})
            if team is not None:
                run = dense_judging_run(encoder, test_corpus(groups), team, settings["batch_size"])
                judged.append(judging_frame(run, results[variant]))
            _log_headline(results[variant])
            log.info(
                "%s: encoded %d distinct texts of %d asked for", variant, encoder.encoded, encoder.requested
            )
            del encoder
        write_parquet(pl.concat(per_query), tmp / "per_query.parquet")
        write_parquet(pl.concat(runs), tmp / "runs.parquet")
        if judged:
            write_parquet(pl.concat(judged), tmp / paths.JUDGING_RUNS)
    return results


def dense_judging_run(encoder: Encoder, corpus: Corpus, queries: pl.DataFrame, batch_size: int) -> Run:
    """A team's queries ranked over the corpus's passages (each passage encoded once: the encoder is
    memoised, and the evaluation has encoded them already)."""
    corpus_emb = encoder.encode_passages(corpus.texts, batch_size=batch_size)
    query_emb = encoder.encode_queries(queries["text"].to_list(), batch_size=batch_size)
    return dense_run(queries["query_id"].to_list(), query_emb, corpus.ids, corpus_emb)


def run_probe_on(encoder: Encoder, tables: Mapping[str, Any], settings: Mapping[str, Any], seed: int) -> dict:
    from archive_encoders.evaluate.probe import run_probe

    probe_tables = {k: tables[k] for k in ("items", "corpus")}
    return run_probe(
        encoder, **probe_tables, settings=settings["probe"], seed=seed, batch_size=settings["batch_size"]
    )


class CompressionRows:
    """Compression of the reference variant's stored vectors (compression.py), per chunk-level test set,
    computed from the embeddings the evaluation already has; int8 ranges and PCA fitted on train passages."""

    @classmethod
    def when_asked(cls, encoder: Encoder, tables: Mapping[str, Any], settings: Mapping[str, Any], seed: int):
        """The collector, or None when compression is off or the train passages are not given."""
        if not settings["compression"]["enabled"] or not {"corpus", "splits"} <= set(tables):
            return None
        return cls(encoder, tables["corpus"], tables["splits"], settings, seed)

    def __init__(self, encoder: Encoder, corpus, splits, settings: Mapping[str, Any], seed: int) -> None:
        from archive_encoders.datasets.splits import train_chunk_sample

        self.settings = settings["compression"]
        texts, _ = train_chunk_sample(corpus, splits, self.settings["train_samples"], seed)
        self.train = encoder.encode_passages(texts, batch_size=settings["batch_size"])
        self.rows: list[dict[str, Any]] = []

    def __call__(self, query_set: qs.QuerySet, query_emb, corpus_emb, corpus_ids) -> None:
        from archive_encoders.evaluate.compression import compression_table

        if query_set.split != "test" or query_set.level != qs.CHUNK_LEVEL:
            return
        rows = compression_table(
            query_emb,
            corpus_emb,
            self.train,
            query_set.qrels,
            query_set.queries["query_id"].to_list(),
            corpus_ids,
            dims=self.settings["dims"],
            rescore_multiplier=self.settings["rescore_multiplier"],
        )
        self.rows += [{"query_set": query_set.name, **row} for row in rows]

    def record(self) -> dict[str, Any]:
        return {"variant": REFERENCE, "train_embeddings": len(self.train), "rows": self.rows}


# --- BM25 ---
