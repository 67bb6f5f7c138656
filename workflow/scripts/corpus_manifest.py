"""Snakemake adapter: the shards' files and the dedupe table -> results/corpus/corpus.json."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])

from archive_encoders.corpus import SHARD_FILES, write_manifest

write_manifest(
    snakemake.output.manifest,
    snakemake.params.shards,
    {kind: list(snakemake.input[kind]) for kind in SHARD_FILES},
    snakemake.input.dedupe,
)
