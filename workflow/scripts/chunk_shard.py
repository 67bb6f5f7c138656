"""Snakemake adapter: one shard's clean documents -> token-bounded chunks with overlap."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.corpus import chunk_documents

chunk_documents(
    snakemake.input.documents,
    snakemake.output.chunks,
    snakemake.params.chunk,
    snakemake.params.tokenizer,
    threads=snakemake.threads,
)
