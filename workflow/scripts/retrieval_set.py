"""Snakemake adapter: the held-out retrieval set (queries, corpus, qrels) from the test split."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.training_data import retrieval_set

retrieval_set(
    snakemake.input.chunks,
    snakemake.input.documents,
    snakemake.input.splits,
    snakemake.output.queries,
    snakemake.output.corpus,
    snakemake.output.qrels,
    retrieval=snakemake.params.retrieval,
    seed=snakemake.params.seed,
)
