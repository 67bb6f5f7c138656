"""Every retriever side by side on every test query set, with paired differences.

Rows: each dense model x method x variant (from evaluate_model), BM25 (evaluate_lexical), and for every
dense row two hybrids with BM25 (fusion.py: RRF, and a weighted sum whose weight was chosen on the val
split's sets pooled). For each row and test set: every metric's mean with its group-bootstrap interval,
and the paired difference in NDCG@10 (same queries, same bootstrap draws over source documents) against
(a) the same model's baseline method in the same variant and retriever — did fine-tuning help? — (b)
BM25 — does it beat keyword search? — and (c) the best row of the set.

Output (paths.COMPARISON): rows.parquet (one row per retriever x test set) and per_query.parquet (NDCG@10
of every row per query, for anyone who wants to recompute a test).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.datasets import querysets as qs
from archive_encoders.datasets.user_sets import read_user_set
from archive_encoders.evaluate import fusion
from archive_encoders.evaluate.lexical import LEXICAL_METHOD, LEXICAL_MODEL, LEXICAL_VARIANT
from archive_encoders.evaluate.metrics import HEADLINE, RETRIEVAL_METRICS, per_query_scores
from archive_encoders.evaluate.ranking import Run, frame_to_run
from archive_encoders.evaluate.stats import group_bootstrap, paired_difference
from archive_encoders.io import atomic_dir, read_json, write_parquet

log = logging.getLogger(__name__)

DENSE, LEXICAL = "dense", "lexical"
RETRIEVERS = (DENSE, LEXICAL, *(f"hybrid-{f}" for f in fusion.FUSIONS))
BASE_METHOD = "baseline"
KEY = ("model", "method", "variant", "retriever", "query_set")


@dataclass
class Scored:
    """One retriever on one test set: per-query scores aligned with the set's query ids."""

    model: str
    method: str
    variant: str
    retriever: str
    query_set: str
    query_ids: list[str]
    scores: dict[str, np.ndarray]  # metric -> per query
    fusion_weight: float | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return (self.model, self.method, self.variant, self.retriever, self.query_set)


def _runs(folder: Path) -> dict[tuple[str, str, str], Run]:
    """(variant, split, query_set) -> run, from an evaluation folder's runs.parquet."""
    frame = pl.read_parquet(folder / "runs.parquet")
    out = {}
    for (variant, split, name), part in frame.group_by(["variant", "split", "query_set"]):
        out[(variant, split, name)] = frame_to_run(part)
    return out


def _per_query(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / "per_query.parquet").filter(pl.col("split") == "test")


def _scored_from_frame(
    model: str, method: str, retriever: str, frame: pl.DataFrame, sets: Mapping[str, qs.QuerySet]
) -> list[Scored]:
    out = []
    for (variant, name), part in frame.group_by(["variant", "query_set"], maintain_order=True):
        order = {q: i for i, q in enumerate(sets[name].qrels)}
        part = part.sort(pl.col("query_id").replace_strict(order, return_dtype=pl.Int64))
        scores = {m: part[m].to_numpy() for m in RETRIEVAL_METRICS}
        out.append(Scored(model, method, variant, retriever, name, part["query_id"].to_list(), scores))
    return out


def _pooled(sets: Sequence[qs.QuerySet], runs: Mapping[str, Run]) -> tuple[dict, dict]:
    """One qrels and one run over several sets (query ids prefixed by the set), for choosing a weight."""
    qrels, run = {}, {}
    for s in sets:
        for qid, judged in s.qrels.items():
            qrels[f"{s.name}:{qid}"] = judged
            run[f"{s.name}:{qid}"] = runs[s.name].get(qid, [])
    return qrels, run


def hybrid_rows(
    model: str,
    method: str,
    variant: str,
    dense: Mapping[tuple[str, str], Run],
    lexical: Mapping[tuple[str, str], Run],
    val_sets: Sequence[qs.QuerySet],
    test_sets: Mapping[str, qs.QuerySet],
) -> list[Scored]:
    """RRF and weighted hybrids of one dense row with BM25 on every test set; the weight from val."""
    weight = None
    tunable = [s for s in val_sets if ("val", s.name) in dense and ("val", s.name) in lexical]
    if tunable:
        qrels, dense_val = _pooled(tunable, {s.name: dense[("val", s.name)] for s in tunable})
        _, lexical_val = _pooled(tunable, {s.name: lexical[("val", s.name)] for s in tunable})
        weight = fusion.choose_weight(qrels, dense_val, lexical_val, HEADLINE)
    out = []
    for name, query_set in test_sets.items():
        if ("test", name) not in dense or ("test", name) not in lexical:
            continue
        # a query a retriever found nothing for has no rows in its runs.parquet: an empty result here
        dense_run, lexical_run = (
            {q: run.get(q, []) for q in query_set.qrels}
            for run in (dense[("test", name)], lexical[("test", name)])
        )
        for method_name in fusion.FUSIONS:
            if method_name == "weighted" and weight is None:
                continue
            fused = fusion.fuse(dense_run, lexical_run, method_name, weight)
            query_ids, scores = per_query_scores(query_set.qrels, fused)
            row = Scored(model, method, variant, f"hybrid-{method_name}", name, query_ids, scores)
            row.fusion_weight = weight if method_name == "weighted" else None
            out.append(row)
    return out


def read_all_sets(query_sets: str | os.PathLike, user_sets: Sequence[str | os.PathLike]):
    """(val sets, test sets by name) with user sets among the test sets."""
    _, val = qs.read_split(query_sets, "val")
    _, test = qs.read_split(query_sets, "test")
    for folder in user_sets:
        _, user = read_user_set(folder)
        test[user.name] = user
    return list(val.values()), test


def collect(
    dense_dirs: Sequence[str | os.PathLike],
    lexical_dir: str | os.PathLike,
    query_sets: str | os.PathLike,
    user_sets: Sequence[str | os.PathLike],
) -> list[Scored]:
    """Every row's per-query scores on the test sets: dense, BM25 and both hybrids of each dense row."""
    val_sets, test_sets = read_all_sets(query_sets, user_sets)
    lexical_dir = Path(lexical_dir)
    lexical_runs = {(s, n): run for (_, s, n), run in _runs(lexical_dir).items()}
    rows = _scored_from_frame(LEXICAL_MODEL, LEXICAL_METHOD, LEXICAL, _per_query(lexical_dir), test_sets)
    for folder in map(Path, dense_dirs):
        meta = read_json(next(folder.glob("*.json")))
        model, method = meta["model"], meta["method"]
        rows += _scored_from_frame(model, method, DENSE, _per_query(folder), test_sets)
        by_variant: dict[str, dict[tuple[str, str], Run]] = {}
        for (variant, split, name), run in _runs(folder).items():
            by_variant.setdefault(variant, {})[(split, name)] = run
        for variant, runs in sorted(by_variant.items()):
            rows += hybrid_rows(model, method, variant, runs, lexical_runs, val_sets, test_sets)
    return rows


def _aligned(a: Scored, b: Scored, groups: Mapping[str, str]):
    if a.query_ids != b.query_ids:
        raise ValueError(f"rows {a.key} and {b.key} were scored on different queries")
    return a.scores[HEADLINE], b.scores[HEADLINE], [groups[q] for q in a.query_ids]


def comparison_table(
    rows: Sequence[Scored], test_sets: Mapping[str, qs.QuerySet], samples: int, seed: int
) -> pl.DataFrame:
    """One record per row and test set: metrics with intervals, and paired NDCG@10 differences."""
    by_key = {r.key: r for r in rows}
    best = {}  # the set's best row; a tie goes to the first of them in key order (deterministic)
    for r in sorted(rows, key=lambda r: r.key):
        mean = float(r.scores[HEADLINE].mean())
        if r.query_set not in best or mean > best[r.query_set][0]:
            best[r.query_set] = (mean, r)
    records = []
    for r in rows:
        groups = test_sets[r.query_set].groups
        matrix = np.stack([r.scores[m] for m in RETRIEVAL_METRICS])
        mean, low, high = group_bootstrap(matrix, [groups[q] for q in r.query_ids], samples, seed)
        record: dict[str, Any] = dict(zip(KEY, r.key, strict=True))
        record |= {"level": test_sets[r.query_set].level, "n_queries": len(r.query_ids)}
        record["n_groups"] = len({groups[q] for q in r.query_ids})
        record["fusion_weight"] = r.fusion_weight
        for i, m in enumerate(RETRIEVAL_METRICS):
            record |= {m: float(mean[i]), f"{m}_ci_low": _finite(low[i]), f"{m}_ci_high": _finite(high[i])}
        references = {
            "base": by_key.get((r.model, BASE_METHOD, r.variant, r.retriever, r.query_set))
            if r.retriever != LEXICAL and r.method != BASE_METHOD
            else None,
            "bm25": by_key.get((LEXICAL_MODEL, LEXICAL_METHOD, LEXICAL_VARIANT, LEXICAL, r.query_set)),
            "best": best[r.query_set][1],
        }
        for name, ref in references.items():
            if ref is None:
                diff = (None, None, None)
            elif ref is r:  # the best row against itself
                diff = (0.0, 0.0, 0.0)
            else:
                d = paired_difference(*_aligned(r, ref, groups), samples, seed)
                diff = (d.value, d.low, d.high)
            for suffix, value in zip(("", "_ci_low", "_ci_high"), diff, strict=True):
                record[f"delta_vs_{name}{suffix}"] = value
        record["best_row"] = "/".join(best[r.query_set][1].key[:4])
        records.append(record)
    table = pl.DataFrame(records, schema=_schema(), orient="row")
    return table.sort("query_set", HEADLINE, descending=[False, True])


def _schema() -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = dict.fromkeys(KEY, pl.String)
    schema |= {"level": pl.String, "n_queries": pl.Int64, "n_groups": pl.Int64, "fusion_weight": pl.Float64}
    for m in RETRIEVAL_METRICS:
        schema |= {m: pl.Float64, f"{m}_ci_low": pl.Float64, f"{m}_ci_high": pl.Float64}
    for name in ("base", "bm25", "best"):
        columns = [f"delta_vs_{name}{suffix}" for suffix in ("", "_ci_low", "_ci_high")]
        schema |= dict.fromkeys(columns, pl.Float64)
    return schema | {"best_row": pl.String}


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def per_query_table(rows: Sequence[Scored], test_sets: Mapping[str, qs.QuerySet]) -> pl.DataFrame:
    frames = []
    for r in rows:
        groups = test_sets[r.query_set].groups
        n = len(r.query_ids)
        frames.append(
            pl.DataFrame(
                {
                    **{k: [v] * n for k, v in zip(KEY, r.key, strict=True)},
                    "query_id": r.query_ids,
                    "group": [groups[q] for q in r.query_ids],
                    HEADLINE: r.scores[HEADLINE],
                }
            )
        )
    return pl.concat(frames)


def compare(
    dense_dirs: Sequence[str | os.PathLike],
    lexical_dir: str | os.PathLike,
    query_sets: str | os.PathLike,
    user_sets: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    bootstrap_samples: int,
    seed: int,
) -> pl.DataFrame:
    """The rule's entry point: write rows.parquet and per_query.parquet into `out_dir` atomically."""
    rows = collect(dense_dirs, lexical_dir, query_sets, user_sets)
    _, test_sets = read_all_sets(query_sets, user_sets)
    table = comparison_table(rows, test_sets, bootstrap_samples, seed)
    with atomic_dir(out_dir) as tmp:
        write_parquet(table, tmp / "rows.parquet")
        write_parquet(per_query_table(rows, test_sets), tmp / "per_query.parquet")
    log.info("compared %d rows on %d test sets", len(rows), table["query_set"].n_unique())
    return table
