"""Snakemake adapter: export one trained model to results/onnx/{model}/{method}/ (FP32, INT8, fidelity)."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.export import export

export(
    model_dir=snakemake.input.model,
    out_dir=snakemake.output.onnx,
    model_spec=snakemake.params.model,
    method=snakemake.wildcards.method,
    export_settings=snakemake.params.export,
    corpus=snakemake.input.corpus,
    splits_path=snakemake.input.splits,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
