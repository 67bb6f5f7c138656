"""Snakemake adapter: split documents into train/val/test by near-duplicate cluster."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets import split_documents

split_documents(
    snakemake.input.corpus,
    snakemake.output.splits,
    split=snakemake.params.split,
    seed=snakemake.params.seed,
)
