"""Snakemake adapter for rule teacher_embeddings (not yet implemented)."""

raise NotImplementedError("teacher_embeddings")
