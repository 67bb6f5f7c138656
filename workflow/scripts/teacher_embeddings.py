"""Snakemake adapter: cache a distillation teacher's embeddings of the train-split chunks."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to
from archive_encoders.train import teacher_embeddings

log_to(snakemake.log[0])
teacher_embeddings(
    snakemake.input.corpus,
    snakemake.input.splits,
    snakemake.output.embeddings,
    teacher=snakemake.params.teacher,
    device=snakemake.params.device,
    max_pairs=snakemake.params.max_pairs,
    seed=snakemake.params.seed,
)
