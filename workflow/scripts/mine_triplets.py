"""Snakemake adapter: pseudo-query triplets with mined hard negatives from the train split."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets import mine_triplets

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
    query_kinds=snakemake.params.query_kinds,
    languages=snakemake.params.languages,
    meta_out=snakemake.output.meta,
)
