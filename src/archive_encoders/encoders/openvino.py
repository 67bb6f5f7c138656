"""The OpenVINO encoder: an exported OpenVINO folder run with openvino + tokenizers + numpy, no torch.

    from archive_encoders.encoders.openvino import OpenVinoEncoder

    enc = OpenVinoEncoder("results/openvino/e5-small/lora", threads=2)
    q = enc.encode_queries(["кто написал письмо?"])           # (1, dim) float32, L2-normalised

The folder is what `archive_encoders.export.openvino.export_openvino` writes: `model_int8.xml/.bin`
(NNCF INT8, pooling and L2 norm inside), `tokenizer.json` and `encoder_config.json`. The CPU plugin
picks its kernels from the instruction sets it finds (AMX, VNNI, AVX-512, AVX2), so one folder runs on
any x86 CPU.
"""

from __future__ import annotations

import os

import numpy as np
import openvino as ov

from archive_encoders.encoders.graph import GraphEncoder

DEFAULT_FILES = {"int8": "model_int8.xml"}


class OpenVinoEncoder(GraphEncoder):
    """Sentence embeddings from an OpenVINO export.

    threads: inference threads (None: OpenVINO's default, one per core). The precision of the layers
    left unquantized is the export's `inference_precision` (f32): the CPU plugin's default on
    AMX/AVX512-BF16 CPUs is bf16, which cost fidelity (min cosine 0.87 on MiniLM) and never latency.
    cache_dir: where OpenVINO may cache the compiled model, which makes the next start faster.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        variant: str = "int8",
        threads: int | None = None,
        device: str = "cpu",
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        if device != "cpu":
            raise ValueError(f"device {device!r}: the OpenVINO variant is a CPU deployment")
        super().__init__(folder, variant)
        self.pad_multiple = int(self.config.get("pad_multiple", 1))
        core = ov.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": str(self.config.get("inference_precision", "f32")),
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(str(self.model_path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self._output = self.compiled.outputs[0]
        self.providers = ["openvino-CPU"]

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        self.request.infer({"input_ids": input_ids, "attention_mask": attention_mask}, share_inputs=True)
        # the output tensor is the request's own buffer, overwritten by the next call
        return np.array(self.request.get_tensor(self._output).data, dtype=np.float32, copy=True)
