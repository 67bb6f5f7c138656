"""Snakemake adapter for rule download_archive (not yet implemented)."""

raise NotImplementedError("download_archive")
