"""Snakemake adapter: the held-out query sets (ict, keyword, title, spelling, subject, description) of the
val and test splits."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets import query_sets

query_sets(
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.output.query_sets,
    retrieval=snakemake.params.retrieval,
    languages=snakemake.params.languages,
    seed=snakemake.params.seed,
    items=snakemake.input.item_list,
)
