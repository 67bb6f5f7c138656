"""Snakemake adapter: train one static model on the triplets (results/static_trained/...)."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.export import train_static

train_static(
    static_dir=snakemake.input.static,
    triplets=snakemake.input.triplets,
    out_dir=snakemake.output.static_trained,
    settings=snakemake.params.static_trained,
    corpus=snakemake.input.corpus,
    splits_path=snakemake.input.splits,
    threads=snakemake.threads,
    seed=snakemake.params.seed,
)
