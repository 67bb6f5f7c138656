"""Snakemake adapter: the judging pool, the top passages of every retriever for a team's queries."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.judging import build_pool

build_pool(
    snakemake.input.queries,
    snakemake.input.evaluations,
    snakemake.input.lexical,
    snakemake.input.comparison,
    snakemake.input.query_sets,
    snakemake.output.pool,
    depth=snakemake.params.depth,
)
