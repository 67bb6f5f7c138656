"""Snakemake adapter for rule measure_latency (not yet implemented)."""

raise NotImplementedError("measure_latency")
