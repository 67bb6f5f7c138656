"""Snakemake adapter: the verdict, the per-set tables, variants, cost, probe, Pareto panels and report.md."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.report import corpus_size, write_report

write_report(
    comparison=snakemake.input.comparison,
    models=snakemake.input.models,
    exports=snakemake.input.exports,
    evaluations=snakemake.input.evaluations,
    lexical=snakemake.input.lexical,
    latency=snakemake.input.latency,
    query_sets=snakemake.input.query_sets,
    user_sets=snakemake.input.user_sets,
    judging=snakemake.input.judging[0] if snakemake.input.judging else None,
    corpus_chunks=corpus_size(snakemake.input.corpus),
    outputs=dict(snakemake.output.items()),
    report_settings=snakemake.params.report,
    export_settings=snakemake.params.export,
)
