"""Snakemake adapter: (noisy, text) TSDAE pairs from train-split chunks."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to
from archive_encoders.training_data import tsdae_pairs

log_to(snakemake.log[0])
tsdae_pairs(
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.output.pairs,
    deletion_ratio=snakemake.params.deletion_ratio,
    max_pairs=snakemake.params.max_pairs,
    seed=snakemake.params.seed,
)
