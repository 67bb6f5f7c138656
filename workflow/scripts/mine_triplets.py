"""Snakemake adapter: pseudo-query triplets with mined hard negatives from the train split."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets import mine_triplets
from archive_encoders.datasets.triplets import MiningSettings

mine_triplets(
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.output.triplets,
    MiningSettings(**snakemake.params),
    meta_out=snakemake.output.meta,
    embeddings_out=snakemake.output.embeddings,
)
