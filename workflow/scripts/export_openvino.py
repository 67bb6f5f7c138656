"""Snakemake adapter: quantize one ONNX export with NNCF into results/openvino/{model}/{method}/."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.export import export_openvino

export_openvino(
    onnx_dir=snakemake.input.onnx,
    out_dir=snakemake.output.openvino,
    model_spec=snakemake.params.model,
    openvino_settings=snakemake.params.openvino,
    gate_settings=snakemake.params.gate,
    corpus=snakemake.input.corpus,
    splits_path=snakemake.input.splits,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
    method=snakemake.wildcards.method,
)
