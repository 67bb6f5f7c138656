"""Snakemake adapter: search archive.org (or read a local `ia download` folder) into items.parquet."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.archive import search

# Runtime-only knobs (concurrency, retries, backoff_s, timeout_s) come from the config, not params,
# so changing them never reruns the search.
search(snakemake.params.archive, snakemake.output.item_list, runtime=snakemake.config["archive"])
