"""Snakemake adapter: search archive.org (or read a local `ia download` folder) into items.parquet."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])

from archive_encoders.archive import search  # noqa: E402 - after logging, so import errors are logged

# Runtime-only knobs (concurrency, retries, backoff_s, timeout_s) come from the config, not params,
# so changing them never reruns the search.
search(snakemake.params.archive, snakemake.output.item_list, runtime=snakemake.config["archive"])
