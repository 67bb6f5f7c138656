"""Snakemake adapter for rule evaluate_variant (not yet implemented)."""

raise NotImplementedError("evaluate_variant")
