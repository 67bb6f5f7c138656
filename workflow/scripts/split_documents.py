"""Snakemake adapter for rule split_documents (not yet implemented)."""

raise NotImplementedError("split_documents")
