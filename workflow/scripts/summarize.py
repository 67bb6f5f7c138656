"""Snakemake adapter: the summary tables, cost and INT8 tables, Pareto plot and report.md."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.report import summarize
from archive_encoders.runlog import log_to

log_to(snakemake.log[0])
summarize(
    **dict(snakemake.input.items()), **dict(snakemake.output.items()), export_settings=snakemake.params.export
)
