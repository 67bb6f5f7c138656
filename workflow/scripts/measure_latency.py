"""Snakemake adapter: time every variant of one model x method, interleaved, in one job."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.evaluate import measure_latency

measure_latency(
    artefacts={kind: snakemake.input[kind] for kind in snakemake.params.artefacts},
    query_sets=snakemake.input.query_sets,
    outputs=dict(snakemake.output.items()),
    model_spec=snakemake.params.model,
    latency_settings=snakemake.params.latency,
    method=snakemake.wildcards.method,
    device=snakemake.params.device,
    seed=snakemake.params.seed,
)
