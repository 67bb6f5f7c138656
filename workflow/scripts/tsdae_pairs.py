"""Snakemake adapter for rule tsdae_pairs (not yet implemented)."""

raise NotImplementedError("tsdae_pairs")
