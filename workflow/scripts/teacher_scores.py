"""Snakemake adapter: cache a GPL teacher's scores and margins of every triplet."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.train import teacher_scores

teacher_scores(
    snakemake.input.triplets,
    snakemake.output.scores,
    teacher=snakemake.params.teacher,
    device=snakemake.params.device,
    meta_out=snakemake.output.meta,
    triplets_meta=snakemake.input.triplets_meta,
    reuse=snakemake.input.miner_embeddings,
)
