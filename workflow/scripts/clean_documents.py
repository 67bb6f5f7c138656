"""Snakemake adapter for rule clean_documents (not yet implemented)."""

raise NotImplementedError("clean_documents")
