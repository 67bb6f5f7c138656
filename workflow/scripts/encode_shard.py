"""Snakemake adapter: encode one corpus shard's chunks with one variant (the index's corpus embeddings)."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.encoders.shard_embeddings import encode_shard

encode_shard(
    chunks=snakemake.input.chunks,
    shard=snakemake.wildcards.shard,
    variant=snakemake.wildcards.variant,
    folder=snakemake.input.artefact,
    out_vectors=snakemake.output.vectors,
    out_ids=snakemake.output.ids,
    out_meta=snakemake.output.meta,
    model=snakemake.params.model,
    method=snakemake.wildcards.method,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
    device=snakemake.params.device,
)
