"""Snakemake adapter: cache a distillation teacher's embeddings of train chunks and pseudo-queries."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.train import teacher_embeddings

teacher_embeddings(
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.input.triplets,
    snakemake.output.embeddings,
    teacher=snakemake.params.teacher,
    device=snakemake.params.device,
    max_pairs=snakemake.params.max_pairs,
    seed=snakemake.params.seed,
    meta_out=snakemake.output.meta,
    triplets_meta=snakemake.input.triplets_meta,
    reuse=snakemake.input.miner_embeddings,
)
