"""Snakemake adapter: (noisy, text) TSDAE pairs from train-split chunks."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets import tsdae_pairs

tsdae_pairs(
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.output.pairs,
    deletion_ratio=snakemake.params.deletion_ratio,
    max_pairs=snakemake.params.max_pairs,
    seed=snakemake.params.seed,
    meta_out=snakemake.output.meta,
)
