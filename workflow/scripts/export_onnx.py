"""Snakemake adapter for rule export_onnx (not yet implemented)."""

raise NotImplementedError("export_onnx")
