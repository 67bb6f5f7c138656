"""Snakemake adapter: export one trained model to results/onnx/{model}/{method}/ (FP32, INT8, fidelity)."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.export import export
from archive_encoders.runlog import log_to

log_to(snakemake.log[0])
export(
    model_dir=snakemake.input.model,
    out_dir=snakemake.output.onnx,
    model_spec=snakemake.params.model,
    export_settings=snakemake.params.export,
    chunks_path=snakemake.input.corpus,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
