"""Snakemake adapter: the summary tables, cost and INT8 tables, Pareto plot and report.md."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.report import write_report

write_report(
    **dict(snakemake.input.items()), **dict(snakemake.output.items()), export_settings=snakemake.params.export
)
