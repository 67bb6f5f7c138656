"""Snakemake adapter: train one model x method run into results/models/{model}/{method}/."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.methods import method_type
from archive_encoders.runlog import log_to

# first: an ImportError below must reach the rule's log; QLoRA keeps bitsandbytes
log_to(snakemake.log[0], needs=method_type(snakemake.params.method["type"]).requires)
from archive_encoders.train import train

train(
    model_spec=snakemake.params.model,
    method_params=snakemake.params.method,
    inputs=dict(snakemake.input.items()),
    out_dir=snakemake.output.model,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    method_name=snakemake.wildcards.method,
    validation=snakemake.params.validation,
)
