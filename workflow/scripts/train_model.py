"""Snakemake adapter for rule train_model (not yet implemented)."""

raise NotImplementedError("train_model")
