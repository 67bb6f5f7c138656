"""Snakemake adapter: index the whole corpus from its shard embeddings of the recommended variant (usearch
HNSW, BM25 beside it) and measure it."""
# `snakemake` is injected by Snakemake; logging starts before the library import (pyproject: ruff ignores)

from archive_encoders.runlog import log_to

log_to(snakemake.log[0])  # first: an ImportError below must reach the rule's log
from archive_encoders.index import build_index

build_index(
    recommendation_path=snakemake.input.recommendation,
    corpus=snakemake.input.corpus,
    embeddings={kind: snakemake.input.get(kind, []) for kind in ("vectors", "ids", "meta")},
    out_dir=snakemake.output.index,
    report_path=snakemake.output.report,
    index_settings=snakemake.params.index,
    threads=snakemake.threads,
    seed=snakemake.params.seed,
    languages=snakemake.params.languages,
)
