"""Snakemake adapter: BM25 (bm25s, Snowball stems, no stop words) on every query set, with its latency."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.evaluate import evaluate_lexical

evaluate_lexical(
    query_sets=snakemake.input.query_sets,
    user_sets=snakemake.input.user_sets,
    out_dir=snakemake.output.evaluation,
    bootstrap_samples=snakemake.params.bootstrap_samples,
    languages=snakemake.params.languages,
    seed=snakemake.params.seed,
    judging_queries=snakemake.input.get("judging_queries") or None,
)
