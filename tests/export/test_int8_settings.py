"""The export section's INT8 settings reach the quantizer: read back from the quantized graph itself."""

from __future__ import annotations

import numpy as np
import pytest
from support.onnx_helpers import random_texts, tiny_spec

from archive_encoders.config import with_defaults
from archive_encoders.export.onnx import export
from archive_encoders.io import read_json


def matmul_weights(model_path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The weights of the dynamic quantizer's MatMulInteger nodes and every initializer by name
    (embedding tables are quantized too, always as uint8: they are not what weight_type sets)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    weights = {
        node.input[1]: initializers[node.input[1]]
        for node in graph.node
        if node.op_type == "MatMulInteger" and node.input[1] in initializers
    }
    return weights, initializers


def test_reduce_range_defaults_to_7_bit_for_signed_weights_only():
    from archive_encoders.export.onnx import resolve_reduce_range

    settings = with_defaults("export", None)
    assert (settings["weight_type"], settings["per_channel"]) == ("uint8", True)
    assert settings["reduce_range"] is None
    assert resolve_reduce_range(settings) is False
    assert resolve_reduce_range({**settings, "weight_type": "int8"}) is True
    assert resolve_reduce_range({**settings, "weight_type": "int8", "reduce_range": False}) is False


@pytest.mark.parametrize(
    "configured",
    [
        {"weight_type": "int8", "reduce_range": True, "per_channel": True},
        {"weight_type": "int8", "per_channel": True},  # reduce_range null: on for int8
        {"weight_type": "int8", "reduce_range": False, "per_channel": False},
        {"weight_type": "uint8", "reduce_range": False, "per_channel": True},
    ],
)
def test_configured_int8_settings_reach_the_quantized_graph(tiny_model, tmp_path, configured):
    out = tmp_path / "onnx"
    # no outlier split and no fusion: every MatMul weight is a plain initializer the quantizer rewrites
    settings = {"fidelity_samples": 6, "outlier_ratio": 0, "optimize": False, **configured}
    export(tiny_model, out, tiny_spec(), settings, sample_texts=random_texts(16, seed=4), method="baseline")

    info = read_json(out / "encoder_config.json")["int8"]
    configured = {"reduce_range": configured["weight_type"] == "int8", **configured}
    assert {key: info[key] for key in configured} == configured
    weights, initializers = matmul_weights(out / "model_int8.onnx")
    assert weights, "no quantized MatMul in the INT8 graph"
    expected_dtype = np.int8 if configured["weight_type"] == "int8" else np.uint8
    for name, value in weights.items():
        assert value.dtype == expected_dtype, name
        scale = initializers[name.removesuffix("_quantized") + "_scale"]
        # per-channel: one scale per output column; per-tensor: a single scale
        assert (scale.size > 1) == configured["per_channel"], name
    if expected_dtype == np.int8:
        largest = max(int(np.abs(v.astype(np.int32)).max()) for v in weights.values())
        # symmetric int8: the largest weight maps to the range's end, 64 with 7 bits, 127 with 8
        assert largest == (64 if configured["reduce_range"] else 127)


def quantized_op_types(model_path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(model_path)).graph.node}


@pytest.mark.parametrize(
    ("keep_float", "quantized", "floating"),
    [
        ([], {"QAttention", "QEmbedLayerNormalization"}, set()),
        (["attention"], {"QEmbedLayerNormalization"}, {"Attention"}),
        (["attention", "embeddings"], set(), {"Attention", "EmbedLayerNormalization"}),
    ],
)
def test_keep_float_leaves_the_named_fused_layers_in_floating_point(
    tiny_model, tmp_path, keep_float, quantized, floating
):
    out = tmp_path / "onnx"
    settings = {"fidelity_samples": 6, "keep_float": keep_float}  # fused: Attention, EmbedLayerNormalization
    export(tiny_model, out, tiny_spec(), settings, sample_texts=random_texts(16, seed=4), method="baseline")

    ops = quantized_op_types(out / "model_int8.onnx")
    assert "MatMulInteger" in ops  # the MatMuls are always quantized
    assert quantized <= ops
    assert floating <= ops
    assert not ({"QAttention", "QEmbedLayerNormalization"} - quantized) & ops
    assert read_json(out / "encoder_config.json")["int8"]["keep_float"] == sorted(keep_float)


def test_keep_float_refuses_a_layer_kind_it_does_not_know():
    from archive_encoders.export.onnx import dynamic_op_types

    assert dynamic_op_types(["attention"]) == ["MatMul", "EmbedLayerNormalization", "Gather"]
    with pytest.raises(ValueError, match="export.keep_float"):
        dynamic_op_types(["feed_forward"])
