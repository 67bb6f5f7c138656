"""The openvino section's NNCF settings reach the quantizer: read back from the quantized OpenVINO graph."""

from __future__ import annotations

import re

from support.onnx_helpers import exported_tiny, random_texts, tiny_spec

from archive_encoders.io import read_json

FFN_DOWN = r".*layer\.\d+/output/dense/MatMul"


def matmul_inputs_quantized(xml_path) -> dict[str, bool]:
    """Per MatMul node: whether its activation input comes from a FakeQuantize."""
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    out = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() == "MatMul":
            source = op.input_value(0).get_node()
            out[op.get_friendly_name()] = source.get_type_name() == "FakeQuantize"
    return out


def test_ignored_patterns_stay_float_and_the_settings_are_recorded(tiny_model, tmp_path):
    from archive_encoders.export.openvino import export_openvino

    settings = {
        "calibration_samples": 8,
        "ignored_patterns": [FFN_DOWN],
        "overflow_fix": "enable",
        "smooth_quant_alpha": -1,
    }
    export_openvino(
        exported_tiny(tiny_model),
        tmp_path / "ov",
        tiny_spec(),
        settings,
        {"fidelity_samples": 6},
        sample_texts=random_texts(24, seed=5),
        method="baseline",
        threads=1,
    )
    recorded = read_json(tmp_path / "ov" / "encoder_config.json")["int8"]["nncf"]
    assert recorded == {
        "overflow_fix": "enable",
        "smooth_quant_alpha": -1,
        "fast_bias_correction": True,
        "ignored_patterns": [FFN_DOWN],
    }
    quantized = matmul_inputs_quantized(tmp_path / "ov" / "model_int8.xml")
    ignored = {name for name in quantized if re.fullmatch(FFN_DOWN, name)}
    assert len(ignored) == 2, quantized  # the tiny model's two layers
    assert not any(quantized[name] for name in ignored)
    # the projections fed straight from a LayerNorm (query/key/value, FFN up) are still INT8
    fed_by_layernorm = [name for name in quantized if re.search(r"self/(query|key|value)|intermediate", name)]
    assert len(fed_by_layernorm) == 8 and all(quantized[name] for name in fed_by_layernorm), quantized
