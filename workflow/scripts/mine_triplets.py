"""Snakemake adapter: pseudo-query triplets with mined hard negatives from the train split."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to
from archive_encoders.training_data import mine_triplets

log_to(snakemake.log[0])
mine_triplets(
    snakemake.input.corpus,
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.output.triplets,
    miner=snakemake.params.miner,
    hard_negatives=snakemake.params.hard_negatives,
    max_pairs=snakemake.params.max_pairs,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
)
