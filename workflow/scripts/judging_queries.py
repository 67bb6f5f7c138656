"""Snakemake adapter: a team's queries file (judging.queries) as the judging queries table."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.datasets.team_queries import write_team_queries

write_team_queries(snakemake.input.queries, snakemake.output.queries)
