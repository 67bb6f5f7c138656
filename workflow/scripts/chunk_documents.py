"""Snakemake adapter for rule chunk_documents (not yet implemented)."""

raise NotImplementedError("chunk_documents")
