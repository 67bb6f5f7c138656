"""Snakemake adapter: one shard's downloaded texts -> clean documents, rejections, MinHash signatures."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])

from archive_encoders.corpus import clean_shard

clean_shard(
    snakemake.input.shard_items,
    snakemake.output.documents,
    snakemake.output.rejected,
    snakemake.output.signatures,
    snakemake.params.clean,
    archive_settings=snakemake.params.archive,
    threads=snakemake.threads,
)
