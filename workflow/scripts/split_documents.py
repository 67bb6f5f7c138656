"""Snakemake adapter: split documents into train/val/test by near-duplicate cluster."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to
from archive_encoders.training_data import split_documents

log_to(snakemake.log[0])
split_documents(
    snakemake.input.corpus,
    snakemake.output.splits,
    split=snakemake.params.split,
    seed=snakemake.params.seed,
)
