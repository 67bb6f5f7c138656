"""The judgments as a graded BEIR folder, ready for `evaluate.retrieval_sets` (datasets.user_sets):

    corpus.jsonl    {"_id", "title", "text"} for every passage of the corpus the pool was drawn from
    queries.jsonl   {"_id", "text"} for every judged query
    qrels/test.tsv  query-id, corpus-id, score: every judged passage, grade 0, 1 or 2
    judging.json    how it was made: annotators, counts (queries typed on the page among them), the pool's
                    depth, the merging rule, Cohen's kappa for every pair of annotators with passages in
                    common, judged@10 per system (flagged below 0.5); the report shows it

A passage graded by several annotators gets the MEAN of their grades ROUNDED HALF UP (0+1 -> 1, 1+2 -> 2,
0+2 -> 1, 0+0+1 -> 0): a disagreement is settled towards relevance, as pooled judging settles an unsure
passage towards being looked at again rather than dropped, and a 0/2 split lands on "partly relevant".
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import polars as pl

from archive_encoders.io import atomic_dir, write_json
from archive_encoders.judging.agreement import cohen_kappa, judged_at_k
from archive_encoders.judging.pool import pool_queries, read_pool
from archive_encoders.judging.store import JudgmentStore

MIN_QUERIES = 10  # fewer judged queries with a relevant passage make too thin an evaluation set
CORPUS_COLUMNS = ("corpus_id", "title", "text")
MERGE_RULE = "mean of the annotators' grades, rounded half up"


class ExportError(ValueError):
    """Judgments that cannot become an evaluation set; the message says which file or what is missing."""


def merge_grades(judgments: pl.DataFrame) -> pl.DataFrame:
    """One grade per (query, passage): the annotators' mean rounded half up. Columns query_id, corpus_id,
    score (Int32), n_annotators."""
    return (
        judgments.group_by("query_id", "corpus_id")
        .agg(score=(pl.col("grade").mean() + 0.5).floor().cast(pl.Int32), n_annotators=pl.len())
        .sort("query_id", "corpus_id")
    )


def agreement_summary(pool: pl.DataFrame, judgments: pl.DataFrame) -> dict:
    """Kappa for every pair of annotators who judged a passage in common (None where undefined), and
    judged@10 per system."""
    kappas = {}
    for first, second in itertools.combinations(sorted(judgments["annotator"].unique().to_list()), 2):
        try:
            result = cohen_kappa(judgments, first, second)
        except ValueError:  # nothing judged in common
            continue
        kappa = None if math.isnan(result.kappa) else round(result.kappa, 4)
        kappas[f"{first} / {second}"] = {"kappa": kappa, "n_pairs": result.n_pairs}
    coverage = judged_at_k(pool, judgments)
    return {
        "kappa": kappas,
        "judged_at_10": {
            system: {"judged": round(share, 4), "flagged": flagged}
            for system, _, share, flagged in coverage.rows()
        },
    }


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_corpus(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise ExportError(f"{path}: no such corpus file")
    corpus = pl.read_parquet(path)
    missing = [c for c in CORPUS_COLUMNS if c not in corpus.columns]
    if missing:
        raise ExportError(f"{path}: missing column {missing[0]!r} (a corpus has {', '.join(CORPUS_COLUMNS)})")
    return corpus.select(pl.col(c).cast(pl.String) for c in CORPUS_COLUMNS).with_columns(
        pl.col("title", "text").fill_null("")
    )


def export_judgments(
    db: str | os.PathLike,
    pool: str | os.PathLike | pl.DataFrame,
    corpus_parquet: str | os.PathLike,
    out_dir: str | os.PathLike,
    min_queries: int = MIN_QUERIES,
) -> dict:
    """Write the judgments in `db` as a graded BEIR folder at `out_dir` (replaced atomically); returns the
    summary also written to judging.json. Needs at least `min_queries` queries with a passage graded 1 or
    2, and every judged passage in the corpus."""
    db, corpus_parquet = Path(db), Path(corpus_parquet)
    if not db.is_file():
        raise ExportError(f"{db}: no such judgments database")
    pool = pool if isinstance(pool, pl.DataFrame) else read_pool(pool)
    store = JudgmentStore(db)
    judgments = store.judgments()
    texts = pool_queries(pool) | dict(store.queries().select("query_id", "text").rows())
    qrels = merge_grades(judgments)
    corpus = _read_corpus(corpus_parquet)
    unknown = sorted(set(qrels["corpus_id"]) - set(corpus["corpus_id"]))
    if unknown:
        raise ExportError(
            f"{corpus_parquet}: judged passage {unknown[0]!r} is not in this corpus "
            f"({len(unknown)} missing; was the pool drawn from another corpus?)"
        )
    usable = qrels.filter(pl.col("score") > 0)["query_id"].n_unique()
    if usable < min_queries:
        raise ExportError(
            f"{db}: {usable} judged queries have a relevant passage, {min_queries} are needed "
            "(judge more, or lower --min-queries)"
        )
    judged = qrels["query_id"].unique(maintain_order=True).to_list()
    typed = set(store.queries().filter(pl.col("source") == "page")["query_id"])
    summary = {
        "annotators": sorted(judgments["annotator"].unique().to_list()),
        "n_judgments": judgments.height,
        "n_queries": len(judged),
        "n_queries_typed": len(typed.intersection(judged)),
        "pool_depth": int(pool["rank"].max()) if pool.height else 0,
        "n_pooled_systems": pool["system"].n_unique(),
        "n_queries_with_relevant": usable,
        "n_qrels": qrels.height,
        "n_passages": corpus.height,
        "grades": {str(g): qrels.filter(pl.col("score") == g).height for g in (0, 1, 2)},
        "merge_rule": MERGE_RULE,
        "corpus": str(corpus_parquet),
        **agreement_summary(pool, judgments),
    }
    with atomic_dir(out_dir) as tmp:
        _write_jsonl(
            tmp / "corpus.jsonl",
            ({"_id": cid, "title": title, "text": text} for cid, title, text in corpus.iter_rows()),
        )
        _write_jsonl(tmp / "queries.jsonl", ({"_id": qid, "text": texts[qid]} for qid in judged))
        (tmp / "qrels").mkdir()
        qrels.select(
            pl.col("query_id").alias("query-id"), pl.col("corpus_id").alias("corpus-id"), "score"
        ).write_csv(tmp / "qrels" / "test.tsv", separator="\t")
        write_json(tmp / "judging.json", summary)
    return summary
