"""Snakemake adapter: retrieval metrics with CIs, STS and the anisotropy diagnostic of one variant."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.evaluate import evaluate
from archive_encoders.runlog import log_to

log_to(snakemake.log[0])
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
