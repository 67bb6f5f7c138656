"""Snakemake adapter: every variant of one model x method on every query set, STS, the metadata probe."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.evaluate import evaluate_model

evaluate_model(
    artefacts={kind: snakemake.input[kind] for kind in snakemake.params.artefacts},
    variants=snakemake.params.variants,
    query_sets=snakemake.input.query_sets,
    user_sets=snakemake.input.user_sets,
    out_dir=snakemake.output.evaluation,
    model_spec=snakemake.params.model,
    method=snakemake.wildcards.method,
    evaluate_settings=snakemake.params.evaluate,
    seed=snakemake.params.seed,
    judging_queries=snakemake.input.get("judging_queries") or None,
    threads=snakemake.threads,
    tables={
        "items": snakemake.input.item_list,
        "corpus": snakemake.input.corpus,
        "splits": snakemake.input.splits,
    },
)
