"""Snakemake adapter: dense, BM25 and hybrid rows on every test set, with paired differences."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.evaluate import compare

compare(
    dense_dirs=snakemake.input.dense,
    lexical_dir=snakemake.input.lexical,
    query_sets=snakemake.input.query_sets,
    user_sets=snakemake.input.user_sets,
    out_dir=snakemake.output.comparison,
    bootstrap_samples=snakemake.params.bootstrap_samples,
    seed=snakemake.params.seed,
)
