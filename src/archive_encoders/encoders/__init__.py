"""Every variant behind one interface (`load_encoder`): the torch model, and the torch-free runtimes
that serve the exports (ONNX Runtime, OpenVINO, static embeddings). Nothing here imports torch at import
time; only the torch variant loads it."""

from archive_encoders.encoders.loader import Encoder, load_encoder
from archive_encoders.encoders.memo import MemoEncoder

__all__ = ["Encoder", "MemoEncoder", "load_encoder"]
