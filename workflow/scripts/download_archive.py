"""Snakemake adapter: download (or, for a local source, verify) each item's text file."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.archive import download

# source/base_url/local_dir are also the search rule's params: changing them reruns the search and so
# this rule. The runtime-only knobs come from the same config section and never rerun anything.
download(
    snakemake.input.item_list,
    snakemake.output.downloads,
    snakemake.params.cache_dir,
    snakemake.params.max_file_mb,
    settings=snakemake.config["archive"],
    max_total_gb=snakemake.params.max_total_gb,
)
