"""Snakemake adapter: downloaded texts -> clean, language-checked, de-duplicated documents."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.documents import build_documents

build_documents(
    snakemake.input.item_list,
    snakemake.input.downloads,
    snakemake.output.documents,
    snakemake.output.rejected,
    snakemake.params.clean,
    archive_settings=snakemake.params.archive,
)
