"""Latency measurement on the tiny model: every variant timed in one interleaved job, sane JSON."""

from __future__ import annotations

from support.eval_fixtures import write_sets
from support.onnx_helpers import exported_tiny, tiny_spec
from support.serving_helpers import openvino_tiny, static_tiny

from archive_encoders.evaluate.latency import measure
from archive_encoders.io import read_json

VARIANTS = ("torch", "onnx-fp32", "onnx-int8", "openvino-int8", "static")


def test_measure_writes_sane_json(tiny_model, tmp_path):
    write_sets(tmp_path / "querysets")  # real-looking query sets: the timed texts come from them
    outputs = {v: tmp_path / "latency" / f"{v}.json" for v in VARIANTS}
    settings = {"threads": 1, "warmup": 1, "repeats": 6, "throughput_batch": 4}
    measure(
        {
            "model": tiny_model,
            "onnx": exported_tiny(tiny_model),
            "openvino": openvino_tiny(tiny_model),
            "static": static_tiny(tiny_model),
        },
        tmp_path / "querysets",
        outputs,
        tiny_spec(),
        settings,
        method="baseline",
    )

    sizes = {}
    for variant, path in outputs.items():
        result = read_json(path)
        assert (result["model"], result["method"], result["variant"]) == ("tiny", "baseline", variant)
        assert result["device"] == "cpu" and result["cpu"] and result["threads"] == 1
        for key in ("batch1_ms", "batch1_query_ms", "batch1_passage_ms"):
            p = result[key]
            assert 0 < p["p50"] <= p["p95"] <= p["p99"]
        assert result["n_queries"] == 6 and result["n_passages"] == 6
        assert result["throughput_batch"] == 4 and result["throughput_texts_per_s"] > 0
        assert result["load_time_s"] > 0 and result["peak_rss_mb"] > 100  # a Python process with a model
        sizes[variant] = result["size_mb"]
    assert 0 < sizes["onnx-int8"] < sizes["onnx-fp32"]
    assert 0 < sizes["openvino-int8"] < sizes["onnx-fp32"]  # the .xml with its .bin weights
