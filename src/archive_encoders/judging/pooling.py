"""The judging pool (TREC's method): for each of a team's queries, the top `depth` passages of every
evaluated retriever — BM25, each dense row (the untouched baseline among them), and each row's RRF and
weighted hybrids with BM25, fused exactly as the comparison fuses them — deduplicated, with which
system returned each passage at which rank. People judge the pool; a passage no system returned is
taken as not relevant, as in TREC.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from archive_encoders import paths
from archive_encoders.evaluate import fusion
from archive_encoders.evaluate.lexical import LEXICAL_MODEL
from archive_encoders.evaluate.ranking import Run, frame_to_run
from archive_encoders.io import write_parquet
from archive_encoders.judging.pool import POOL_SCHEMA

log = logging.getLogger(__name__)

ROW = ["model", "method", "variant"]


def system_runs(evaluations: Sequence[str | os.PathLike], lexical: str | os.PathLike) -> dict[str, Run]:
    """system name -> its run over the team's queries, from each evaluation folder's judging runs."""
    runs: dict[str, Run] = {}
    for folder in [*evaluations, lexical]:
        path = Path(folder) / paths.JUDGING_RUNS
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no judging runs (was judging.queries set when it was evaluated?)"
            )
        frame = pl.read_parquet(path)
        for (model, method, variant), part in frame.group_by(
            ["model", "method", "variant"], maintain_order=True
        ):
            name = LEXICAL_MODEL if model == LEXICAL_MODEL else f"{model}/{method}/{variant}/dense"
            runs[name] = frame_to_run(part)
    return runs


def hybrid_runs(runs: dict[str, Run], weights: dict[tuple[str, str, str], float]) -> dict[str, Run]:
    """Each dense run fused with BM25's, RRF and weighted (the weight compare chose on val for that row)."""
    lexical = runs[LEXICAL_MODEL]
    out = {}
    for name, dense in runs.items():
        if name == LEXICAL_MODEL:
            continue
        key = tuple(name.split("/")[:3])
        both = {q: dense.get(q, []) for q in lexical.keys() | dense.keys()}
        lexical_all = {q: lexical.get(q, []) for q in both}
        for method in fusion.FUSIONS:
            weight = weights.get(key) if method == "weighted" else None
            if method == "weighted" and weight is None:
                continue
            out[name.replace("/dense", f"/hybrid-{method}")] = fusion.fuse(both, lexical_all, method, weight)
    return out


def fusion_weights(comparison: str | os.PathLike) -> dict[tuple[str, str, str], float]:
    rows = pl.read_parquet(Path(comparison) / "rows.parquet")
    weighted = rows.filter((pl.col("retriever") == "hybrid-weighted") & pl.col("fusion_weight").is_not_null())
    return {
        (m, me, v): float(w)
        for m, me, v, w in weighted.select("model", "method", "variant", "fusion_weight").unique().rows()
    }


def build_pool(
    queries: str | os.PathLike,
    evaluations: Sequence[str | os.PathLike],
    lexical: str | os.PathLike,
    comparison: str | os.PathLike,
    query_sets: str | os.PathLike,
    pool_out: str | os.PathLike,
    depth: int,
) -> pl.DataFrame:
    """Write the pool (POOL_SCHEMA): every system's top `depth` for each query, with the passage's text
    (from the test split's corpus in `query_sets`, the passages every system ranked)."""
    team = pl.read_parquet(queries)
    runs = system_runs(evaluations, lexical)
    runs |= hybrid_runs(runs, fusion_weights(comparison))
    rows = [
        (qid, system, rank, cid)
        for system, run in sorted(runs.items())
        for qid in team["query_id"].to_list()
        for rank, (cid, _) in enumerate(run.get(qid, [])[:depth], start=1)
    ]
    hits = pl.DataFrame(rows, schema=["query_id", "system", "rank", "corpus_id"], orient="row")
    corpus = Path(query_sets) / "test" / "corpus.parquet"
    passages = pl.read_parquet(corpus, columns=["corpus_id", "doc_id", "title", "text"])
    pool = (
        hits.join(team.rename({"text": "query"}), on="query_id", how="left")
        .join(passages, on="corpus_id", how="left")
        .select([pl.col(k).cast(t) for k, t in POOL_SCHEMA.items()])
        .sort("query_id", "system", "rank")
    )
    write_parquet(pool, pool_out)
    per_query = pool.group_by("query_id").agg(pl.col("corpus_id").n_unique())["corpus_id"]
    log.info(
        "pool: %d queries, %d systems, depth %d, %.1f distinct passages per query",
        team.height,
        len(runs),
        depth,
        per_query.mean() or 0.0,
    )
    return pool
