"""Snakemake adapter: distil one trained model into static token embeddings (results/static/...)."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.export import export_static

export_static(
    model_dir=snakemake.input.model,
    out_dir=snakemake.output.static,
    model_spec=snakemake.params.model,
    static_settings=snakemake.params.static,
    corpus=snakemake.input.get("corpus"),
    splits_path=snakemake.input.get("splits"),
    threads=snakemake.threads,
    method=snakemake.wildcards.method,
)
