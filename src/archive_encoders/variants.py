"""The registry of deployable variants: each trained model is evaluated and timed in every one.

A variant is one way to serve a trained model: the PyTorch folder itself, or a file of an export
folder run by another runtime. `artefact` names the stage folder that holds it (`paths.ARTEFACTS`),
`file_key` the file inside (the export's `encoder_config.json` "files"), `runtime` the loader in
`encoders/loader.py`'s `load_encoder`. Adding a variant is: an entry here, the export step that writes
its file, and (for a new runtime) its loader (docs/ARCHITECTURE.md, "Adding a variant").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    name: str
    artefact: str  # a key of paths.ARTEFACTS: "model", "onnx", "openvino", "static", "static_trained"
    runtime: str  # "torch", "onnxruntime", "openvino" or "model2vec" (encoders/loader.py)
    precision: str
    file_key: str | None = None  # the file inside the artefact folder
    reference: bool = False  # the variant every other one is compared with (fidelity, speedups)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("torch", artefact="model", runtime="torch", precision="fp32", reference=True),
        Variant("onnx-fp32", artefact="onnx", runtime="onnxruntime", precision="fp32", file_key="fp32"),
        Variant("onnx-int8", artefact="onnx", runtime="onnxruntime", precision="int8", file_key="int8"),
        Variant("openvino-int8", artefact="openvino", runtime="openvino", precision="int8", file_key="int8"),
        Variant("static", artefact="static", runtime="model2vec", precision="fp32"),
        # the static model trained further on the training triplets (export/static_trained.py)
        Variant("static-trained", artefact="static_trained", runtime="model2vec", precision="fp32"),
    )
}
NAMES = tuple(VARIANTS)
REFERENCE = next(v.name for v in VARIANTS.values() if v.reference)


def variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; expected one of {list(VARIANTS)}") from None


def order(name: str) -> int:
    """Registry position, for sorting tables (unknown names last)."""
    return NAMES.index(name) if name in VARIANTS else len(NAMES)
