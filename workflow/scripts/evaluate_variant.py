"""Snakemake adapter: retrieval metrics with CIs, STS and the anisotropy diagnostic of one variant."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.evaluate import evaluate

evaluate(
    model_path=snakemake.input.model,
    variant=snakemake.wildcards.variant,
    queries=snakemake.input.queries,
    corpus=snakemake.input.corpus,
    qrels=snakemake.input.qrels,
    sts_sets=snakemake.params.evaluate["sts"],
    out_path=snakemake.output.metrics,
    model_spec=snakemake.params.model,
    evaluate_settings=snakemake.params.evaluate,
    seed=snakemake.params.seed,
    method=snakemake.wildcards.method,
    threads=snakemake.threads,
)
