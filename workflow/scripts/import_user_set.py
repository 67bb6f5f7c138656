"""Snakemake adapter: check a user-judged query set (BEIR or Parquet) and write it in our layout."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets import import_user_set

import_user_set(snakemake.params.folder, snakemake.output.query_set, snakemake.wildcards.retrieval_set)
