"""Snakemake adapter: train one model x method into results/models/{model}/{method}/."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to
from archive_encoders.train import train

log_to(snakemake.log[0])
train(
    model_spec=snakemake.params.model,
    method_params=snakemake.params.method,
    inputs=dict(snakemake.input.items()),
    out_dir=snakemake.output.model,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    method_name=snakemake.wildcards.method,
)
