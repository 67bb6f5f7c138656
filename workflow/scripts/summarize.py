"""Snakemake adapter for rule summarize (not yet implemented)."""

raise NotImplementedError("summarize")
