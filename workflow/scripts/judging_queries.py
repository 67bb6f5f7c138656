"""Snakemake adapter: a team's queries file (judging.queries) and the queries typed on the judging page
as the judging queries table."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets.team_queries import write_team_queries

source = snakemake.input.queries[0] if snakemake.input.queries else None
write_team_queries(source, snakemake.output.queries, typed=snakemake.params.typed)
