"""Snakemake adapter for rule mine_triplets (not yet implemented)."""

raise NotImplementedError("mine_triplets")
