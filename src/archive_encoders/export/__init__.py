"""Stage 5, export: ONNX FP32/INT8, OpenVINO INT8 and static embeddings (distilled, and trained on the
triplets), each behind a fidelity gate."""

from archive_encoders.export.onnx import export
from archive_encoders.export.openvino import export_openvino
from archive_encoders.export.static import export_static
from archive_encoders.export.static_trained import train_static

__all__ = ["export", "export_openvino", "export_static", "train_static"]
