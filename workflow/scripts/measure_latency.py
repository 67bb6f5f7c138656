"""Snakemake adapter: time torch, onnx-fp32 and onnx-int8 of one model x method, interleaved, in one job."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.latency import measure
from archive_encoders.runlog import log_to

log_to(snakemake.log[0])
measure(
    model_dir=snakemake.input.model,
    onnx_dir=snakemake.input.onnx,
    queries_path=snakemake.input.queries,
    corpus_path=snakemake.input.corpus,
    outputs=dict(snakemake.output.items()),
    model_spec=snakemake.params.model,
    latency_settings=snakemake.params.latency,
    method=snakemake.wildcards.method,
    device=snakemake.params.device,
    seed=snakemake.params.seed,
)
