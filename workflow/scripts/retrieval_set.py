"""Snakemake adapter for rule retrieval_set (not yet implemented)."""

raise NotImplementedError("retrieval_set")
