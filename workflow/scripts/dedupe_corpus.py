"""Snakemake adapter: every shard's signatures -> duplicates and clusters of the whole corpus."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])

from archive_encoders.corpus import dedupe_corpus

dedupe_corpus(snakemake.input.signatures, snakemake.output.dedupe, snakemake.params.dedupe)
