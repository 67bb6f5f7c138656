"""Snakemake adapter: one shard's clean documents -> token-bounded chunks with overlap."""
# ruff: noqa: F821 - `snakemake` is injected by Snakemake

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])

from archive_encoders.chunk import chunk_documents  # noqa: E402 - after the log is set up

chunk_documents(
    snakemake.input.documents,
    snakemake.output.chunks,
    snakemake.params.chunk,
    snakemake.params.tokenizer,
    threads=snakemake.threads,
)
