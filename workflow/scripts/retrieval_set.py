"""Snakemake adapter: the held-out retrieval set (queries, corpus, qrels) from the test split."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to
from archive_encoders.training_data import retrieval_set

log_to(snakemake.log[0])
retrieval_set(
    snakemake.input.corpus,
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.output.queries,
    snakemake.output.corpus,
    snakemake.output.qrels,
    retrieval=snakemake.params.retrieval,
    seed=snakemake.params.seed,
)
