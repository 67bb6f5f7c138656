"""Snakemake adapter: downloaded texts -> clean, language-checked, de-duplicated documents."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.documents import build_documents
from archive_encoders.runlog import log_to

log_to(snakemake.log[0])
build_documents(
    snakemake.input.item_list,
    snakemake.input.downloads,
    snakemake.output.documents,
    snakemake.output.rejected,
    snakemake.params.clean,
    archive_settings=snakemake.params.archive,
)
