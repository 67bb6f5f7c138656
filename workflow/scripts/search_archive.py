"""Snakemake adapter for rule search_archive (not yet implemented)."""

raise NotImplementedError("search_archive")
