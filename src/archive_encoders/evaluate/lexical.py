"""BM25, the keyword search a team already has: bm25s over Snowball-stemmed words without stop words.

It indexes the same clean passages the dense models see (modern spelling; a query set's overrides
applied), so the lexical row and the dense rows answer the same question. Passages with no query word
are not returned (a keyword engine would not), so a run can be shorter than TOP_K.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders import paths
from archive_encoders.datasets import querysets as qs
from archive_encoders.datasets.text_analysis import Analyzer
from archive_encoders.evaluate.ranking import TOP_K, DocumentRanker, Run
from archive_encoders.evaluate.scoring import (
    ScoredSet,
    _log_headline,
    judging_frame,
    read_sets,
    score_run,
    summarize_sets,
    test_corpus,
)
from archive_encoders.io import atomic_dir, read_json, write_json, write_parquet

ANALYZER_FILE = "analyzer.json"


class BM25Index:
    """A bm25s index over `texts`, queried with the same analyzer; `save` and `load` keep it in a folder
    (bm25s's own files, and the analyzer's languages beside them)."""

    def __init__(self, texts: Sequence[str], analyzer: Analyzer, k1: float = 1.5, b: float = 0.75) -> None:
        import bm25s

        self.analyzer = analyzer
        self.retriever = bm25s.BM25(k1=k1, b=b)
        self.retriever.index(analyzer.tokens_many(texts), show_progress=False)
        self.vocab = self.retriever.vocab_dict
        self.size = len(texts)

    @classmethod
    def from_token_ids(
        cls,
        token_ids: list[list[int]],
        vocab: dict[str, int],
        analyzer: Analyzer,
        k1: float = 1.5,
        b: float = 0.75,
    ) -> BM25Index:
        """The index of passages already analysed into ids of `vocab` (built batch by batch, so that no
        pass holds every text): the same scores as BM25Index(texts, analyzer)."""
        import bm25s

        index = cls.__new__(cls)
        index.analyzer = analyzer
        index.retriever = bm25s.BM25(k1=k1, b=b)
        index.retriever.index((token_ids, vocab), show_progress=False)
        index.vocab = index.retriever.vocab_dict
        index.size = len(token_ids)
        return index

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(folder), show_progress=False)
        write_json(folder / ANALYZER_FILE, {"languages": list(self.analyzer.languages), "size": self.size})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BM25Index:
        """The index `save` wrote, its analyzer rebuilt for the same languages (arrays memory-mapped)."""
        import bm25s

        folder = Path(folder)
        meta = read_json(folder / ANALYZER_FILE)
        index = cls.__new__(cls)
        index.analyzer = Analyzer(meta["languages"])
        index.retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        index.vocab = index.retriever.vocab_dict
        index.size = int(meta["size"])
        return index

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for one query (zeros when no query word is in the index)."""
        tokens = [t for t in self.analyzer.tokens(query) if t in self.vocab]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def top_rows(
        self, query: str, k: int = TOP_K, documents: DocumentRanker | None = None
    ) -> list[tuple[int, float]]:
        """(position, score) of the top-k passages (or documents of `documents`, by their best passage)
        with a positive score, best first; ties by position. Only the positive scores are sorted: the
        sort's cost follows the passages holding a query word, not the corpus."""
        scores = self.scores(query)
        if documents is not None:
            scores = documents.scores(scores[None, :])[0]
        positive = np.flatnonzero(scores > 0)
        order = positive[np.lexsort((positive, -scores[positive]))[:k]]
        return [(int(j), float(scores[j])) for j in order]

    def run(
        self,
        query_ids: Sequence[str],
        queries: Sequence[str],
        corpus_ids: Sequence[str],
        documents: DocumentRanker | None = None,
        k: int = TOP_K,
    ) -> Run:
        """Top-k passages (or documents, by their best passage) with a positive score, best first; ties
        by corpus position (top_rows, named by `corpus_ids` or the documents' ids)."""
        ids = list(documents.doc_ids) if documents is not None else list(corpus_ids)
        return {
            qid: [(ids[j], score) for j, score in self.top_rows(query, k, documents)]
            for qid, query in zip(query_ids, queries, strict=True)
        }


# The keyword-search row: a retriever of its own, beside the dense models.
LEXICAL_MODEL, LEXICAL_METHOD, LEXICAL_VARIANT = "bm25", "untrained", "lexical"


def score_lexical(groups, languages: Sequence[str]) -> tuple[list[ScoredSet], dict[str, Any]]:
    """Every set ranked by BM25 over the same passages (overrides applied); returns the scored sets and
    batch-1 query latency (analyse + retrieve, p50/p95 over the test queries)."""
    from archive_encoders.datasets.text_analysis import Analyzer
    from archive_encoders.evaluate.lexical import BM25Index

    analyzer = Analyzer(languages)
    scored, timings = [], []
    for corpus, sets in groups:
        base = BM25Index(corpus.texts, analyzer)
        documents = corpus.documents()
        for query_set in sets:
            index = base
            if query_set.overrides:
                texts = [
                    query_set.overrides.get(cid, t) for cid, t in zip(corpus.ids, corpus.texts, strict=True)
                ]
                index = BM25Index(texts, analyzer)
            ranker = documents if query_set.level == qs.DOCUMENT_LEVEL else None
            run: Run = {}
            for qid, text in query_set.queries.select("query_id", "text").rows():
                started = time.perf_counter()
                run.update(index.run([qid], [text], corpus.ids, ranker))
                if query_set.split == "test":
                    timings.append(time.perf_counter() - started)
            scored.append(score_run(query_set, run))
    ms = np.asarray(timings) * 1000
    latency = {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)} if ms.size else {}
    return scored, latency


def evaluate_lexical(
    query_sets: str | os.PathLike,
    user_sets: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    bootstrap_samples: int,
    languages: Sequence[str],
    seed: int,
    judging_queries: str | os.PathLike | None = None,
) -> dict:
    """The BM25 row (model bm25, variant lexical) in the layout of evaluate_model, with its latency; a
    team's queries (judging_queries) ranked over the test passages into paths.JUDGING_RUNS."""
    from archive_encoders.system import cpu_flags, cpu_model

    groups = read_sets(query_sets, user_sets)
    started = time.perf_counter()
    scored, latency = score_lexical(groups, languages)
    result = {
        "model": LEXICAL_MODEL,
        "method": LEXICAL_METHOD,
        "variant": LEXICAL_VARIANT,
        "query_sets": summarize_sets(scored, bootstrap_samples, seed),
        "sts": {},
        "diagnostics": {},
        "eval_seconds": round(time.perf_counter() - started, 2),
        "latency": {"batch1_query_ms": latency, "cpu": cpu_model(), "cpu_flags": cpu_flags(), "threads": 1},
        "analyzer_languages": list(languages),
    }
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / f"{LEXICAL_VARIANT}.json", result)
        write_parquet(
            pl.concat([s.per_query_frame(LEXICAL_VARIANT) for s in scored]), tmp / "per_query.parquet"
        )
        write_parquet(pl.concat([s.run_frame(LEXICAL_VARIANT) for s in scored]), tmp / "runs.parquet")
        if judging_queries:
            team = pl.read_parquet(judging_queries)
            corpus = test_corpus(groups)
            run = BM25Index(corpus.texts, Analyzer(languages)).run(
                team["query_id"].to_list(), team["text"].to_list(), corpus.ids
            )
            write_parquet(judging_frame(run, result), tmp / paths.JUDGING_RUNS)
    _log_headline(result)
    return result
