"""A query set scored for one retriever (its run, per-query scores, a bootstrap summary), and reading
the sets every retriever is scored on."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.datasets import querysets as qs
from archive_encoders.datasets.user_sets import read_user_set
from archive_encoders.evaluate.metrics import (
    RETRIEVAL_METRICS,
    per_query_scores,
)
from archive_encoders.evaluate.ranking import DocumentRanker, Run, run_to_frame
from archive_encoders.evaluate.stats import group_bootstrap

log = logging.getLogger(__name__)


@dataclass
class ScoredSet:
    """One query set scored for one retriever: the run, per-query scores and their summary."""

    query_set: qs.QuerySet
    run: Run
    per_query: dict[str, np.ndarray]  # metric -> aligned with query_ids
    query_ids: list[str]

    def summary(self, bootstrap_samples: int, seed: int) -> dict[str, Any]:
        groups = [self.query_set.groups[q] for q in self.query_ids]
        matrix = np.stack([self.per_query[m] for m in RETRIEVAL_METRICS])
        mean, low, high = group_bootstrap(matrix, groups, bootstrap_samples, seed)
        metrics = {
            m: {"value": float(mean[i]), "ci_low": _finite(low[i]), "ci_high": _finite(high[i])}
            for i, m in enumerate(RETRIEVAL_METRICS)
        }
        return {
            "level": self.query_set.level,
            "generator": self.query_set.generator,
            "n_queries": len(self.query_ids),
            "n_groups": len(set(groups)),
            "metrics": metrics,
        }

    def per_query_frame(self, variant: str) -> pl.DataFrame:
        n = len(self.query_ids)
        groups = [self.query_set.groups[q] for q in self.query_ids]
        columns = {
            "variant": [variant] * n,
            "split": [self.query_set.split] * n,
            "query_set": [self.query_set.name] * n,
            "query_id": self.query_ids,
            "group": groups,
        }
        return pl.DataFrame(columns | {m: self.per_query[m] for m in RETRIEVAL_METRICS})

    def run_frame(self, variant: str) -> pl.DataFrame:
        return run_to_frame(self.run).with_columns(
            variant=pl.lit(variant), split=pl.lit(self.query_set.split), query_set=pl.lit(self.query_set.name)
        )


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def score_run(query_set: qs.QuerySet, run: Run) -> ScoredSet:
    query_ids, scores = per_query_scores(query_set.qrels, run)
    return ScoredSet(query_set, run, scores, query_ids)


@dataclass
class Corpus:
    """A corpus the sets of one split (or one user set) rank: ids, texts, documents."""

    key: str
    frame: pl.DataFrame  # corpus_id, doc_id, text, ...

    @property
    def ids(self) -> list[str]:
        return self.frame["corpus_id"].to_list()

    @property
    def texts(self) -> list[str]:
        return self.frame["text"].to_list()

    def documents(self) -> DocumentRanker:
        return DocumentRanker(self.frame["doc_id"].to_list())


def read_sets(
    query_sets: str | os.PathLike | None, user_sets: Sequence[str | os.PathLike] = ()
) -> list[tuple[Corpus, list[qs.QuerySet]]]:
    """Every corpus with the sets that rank it: the val and test splits' generated sets, user sets."""
    groups: list[tuple[Corpus, list[qs.QuerySet]]] = []
    if query_sets is not None:
        for split in qs.HELD_OUT:
            corpus, sets = qs.read_split(query_sets, split)
            if sets:
                groups.append((Corpus(split, corpus), list(sets.values())))
    for folder in user_sets:
        corpus, query_set = read_user_set(folder)
        groups.append((Corpus(query_set.corpus_key, corpus), [query_set]))
    if not groups:  # said here, before any model is loaded, not as a failed concat of no results
        raise ValueError(
            f"no query set to evaluate: {query_sets} holds no val or test set with a query (is the corpus "
            "big enough for the splits and datasets.retrieval.sets?) and no evaluate.retrieval_sets is "
            "configured"
        )
    return groups


def summarize_sets(scored: Sequence[ScoredSet], bootstrap_samples: int, seed: int) -> dict[str, dict]:
    """{split: {set: summary}} as the eval JSON holds it."""
    out: dict[str, dict] = {}
    for s in scored:
        out.setdefault(s.query_set.split, {})[s.query_set.name] = s.summary(bootstrap_samples, seed)
    return out


def _log_headline(result: Mapping[str, Any]) -> None:
    for split, sets in result["query_sets"].items():
        for name, summary in sets.items():
            ndcg = summary["metrics"]["ndcg@10"]
            bounds = (
                "no interval" if ndcg["ci_low"] is None else f"[{ndcg['ci_low']:.4f}, {ndcg['ci_high']:.4f}]"
            )
            row = "/".join(result[k] for k in ("model", "method", "variant"))
            log.info(
                "%s %s/%s: ndcg@10 %.4f %s on %d queries",
                row,
                split,
                name,
                ndcg["value"],
                bounds,
                summary["n_queries"],
            )


def judging_frame(run: Run, names: Mapping[str, str]) -> pl.DataFrame:
    """A team's queries ranked by one retriever (paths.JUDGING_RUNS): model, method, variant, query_id,
    id, rank, score over the test split's passages."""
    frame = run_to_frame(run)
    return frame.select(
        *(pl.lit(names[k], pl.String).alias(k) for k in ("model", "method", "variant")), pl.all()
    )


def test_corpus(groups: Sequence[tuple[Corpus, list]]) -> Corpus:
    """The test split's corpus (a team's queries are ranked over the passages the verdict is tested on)."""
    for corpus, _ in groups:
        if corpus.key == "test":
            return corpus
    raise ValueError("no test split among the query sets: a team's queries are ranked over its passages")
