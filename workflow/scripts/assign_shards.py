"""Snakemake adapter: items + downloads -> one item list per shard (stable across runs: a ledger)."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])

from archive_encoders.corpus import assign_shards

assign_shards(
    snakemake.input.item_list,
    snakemake.input.downloads,
    snakemake.output.shard_items,
    snakemake.params.ledger,
    snakemake.params.items_per_shard,
)
