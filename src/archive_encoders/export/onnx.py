"""ONNX export: an FP32 graph that outputs the sentence embedding, an INT8 graph, a fidelity gate.

The route (optimum-onnx needs transformers < 5, so it cannot be installed beside this stack):

1. `torch.onnx.export` of the HF transformer wrapped with the pooling (mean or CLS) and L2 normalisation,
   dynamic batch and sequence axes, eager attention (its pattern is the one onnxruntime's fuser knows).
2. onnxruntime's transformer optimizer fuses attention, LayerNorm (+ residual), GELU and embeddings.
3. Activation ranges are measured on sample chunks; input channels with outlier ranges are split
   (outlier channel splitting, Zhao et al. 2019): channel j with range a_j becomes c_j copies carrying
   x_j / c_j each and the weight row is repeated, which is exact in FP32 and shrinks the per-tensor range
   the dynamic quantizer must cover, so the other channels keep their precision.
4. `quantize_dynamic` with per-channel weights (or static QDQ calibrated on the chunks). Weights are
   uint8 by default (U8U8). int8 weights (U8S8, VPMADDUBSW on AVX2) saturate its int16 pair sums on
   x86 CPUs without VNNI (255 x 127 x 2 > 32767) once activations use their full range, which is
   exactly what step 3 makes them do, so they get 7-bit weights (`reduce_range`, 255 x 64 x 2 < 32767).
   On MiniLM here (AVX2, no VNNI) that route was no faster than U8U8 and kept less fidelity.
   `export.keep_float` leaves fused layers in FP32, e.g. the attention's query/key/value projection, whose
   QAttention quantizes the unsplit residual stream per tensor: the largest single loss of mean cosine.
5. The gate: every variant is compared with the PyTorch SentenceTransformer on a fixed sample of chunks.

Everything is written into a temporary folder that replaces `out_dir` only when the export succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from archive_encoders.config import ModelSpec, default_seed, with_defaults
from archive_encoders.datasets.splits import train_chunk_sample
from archive_encoders.encoders.onnx import CONFIG_FILE, DEFAULT_FILES
from archive_encoders.export.fidelity import check_fidelity, fidelity_report
from archive_encoders.io import atomic_dir, write_json
from archive_encoders.sampling import query_like, sample_split
from archive_encoders.system import size_mb

log = logging.getLogger(__name__)

OUTPUT_NAME = "sentence_embedding"
INPUT_NAMES = ["input_ids", "attention_mask"]
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's 2 GB limit, with room to spare

MAX_EXTRA_CHANNELS = 0.25  # outlier splitting may widen an input by at most this fraction
# the dynamic quantizer's operator types: MatMuls always, the fused layers unless export.keep_float names them
ALWAYS_QUANTIZED = ("MatMul",)
KEEP_FLOAT_OPS = {"attention": ("Attention",), "embeddings": ("EmbedLayerNormalization", "Gather")}


def export(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_spec: Mapping[str, Any],
    export_settings: Mapping[str, Any] | None = None,
    corpus: str | os.PathLike | None = None,
    seed: int | None = None,
    sample_texts: Sequence[str] | None = None,
    threads: int | None = None,
    *,
    method: str,
    splits_path: str | os.PathLike | None = None,
) -> dict:
    """Export the sentence-transformers folder `model_dir` into `out_dir`; return the fidelity report.

    Sample texts (for calibration and the gate) are drawn, seeded, from the train-split chunks of
    the corpus manifest `corpus` (`splits_path` says which documents are train), or given directly
    as `sample_texts`.
    """
    seed = default_seed(seed)
    settings = with_defaults("export", export_settings)
    out_dir = Path(out_dir).resolve()  # absolute: the ORT tools run with the scratch folder as cwd
    spec = replace(ModelSpec.from_config(dict(model_spec)), path=str(model_dir))
    fidelity_texts, calibration_texts = calibration_sample(
        corpus, splits_path, sample_texts, int(settings["fidelity_samples"]), seed
    )
    if not fidelity_texts:
        raise ValueError("export: no sample texts for calibration and the fidelity gate")

    from archive_encoders.models import load_sentence_transformer

    model = load_sentence_transformer(spec, device="cpu")
    with atomic_dir(out_dir) as tmp:
        started = time.perf_counter()
        files = {key: DEFAULT_FILES[key] for key in ("fp32", "int8")}
        with _scratch(tmp / ".work") as work, _quiet_root_logger():
            export_fp32(model, spec.pooling, tmp / files["fp32"], int(settings["opset"]), work)
            optimized, fusion = optimize_graph(
                model, tmp / files["fp32"], work, enabled=bool(settings["optimize"])
            )
            calibration = tokenize_feeds(model, spec, calibration_texts)
            int8_info = quantize_int8(optimized, tmp / files["int8"], settings, calibration, work)
            if settings["fp16"]:
                files["fp16"] = DEFAULT_FILES["fp16"]
                convert_fp16(optimized, tmp / files["fp16"])
        save_tokenizer(model, tmp, spec.max_seq_length)
        write_json(tmp / CONFIG_FILE, encoder_config(model, spec, method, files, settings, fusion, int8_info))
        log.info(
            "exported %s in %.1f s; fused operators %s", model_dir, time.perf_counter() - started, fusion
        )

        report = {
            "model": spec.name,
            "method": method,
            **fidelity_report(model, spec, tmp, files, fidelity_texts, settings, threads),
        }
        write_json(tmp / "fidelity.json", report)
        for variant, entry in report["variants"].items():
            log.info("fidelity %s vs torch: %s", variant, entry)
        check_fidelity(report, settings)
    return report


# --- 1. FP32 graph ---


def _embedding_module(transformer, pooling: str):
    """The HF transformer followed by pooling and L2 normalisation: its output is the sentence embedding."""
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                pooled = tokens[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
                pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentenceEmbedding().eval()


def export_fp32(model, pooling: str, path: Path, opset: int, work: Path) -> None:
    """torch.onnx.export (TorchScript route, opset `opset`) with dynamic batch and sequence axes."""
    import torch

    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling {pooling!r}: expected mean or cls")
    transformer = model[0].auto_model
    # Eager attention exports as MatMul/Softmax, the pattern the ORT fuser turns into one Attention node;
    # SDPA exports with NaN guards that block the fusion. Restored afterwards for the torch reference.
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")
    try:
        module = _embedding_module(transformer, pooling)
        dummy = torch.ones(2, 16, dtype=torch.long)
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
        raw = work / "raw.onnx"
        with torch.no_grad(), warnings_quiet():
            torch.onnx.export(
                module,
                (dummy, torch.ones_like(dummy)),
                str(raw),
                input_names=INPUT_NAMES,
                output_names=[OUTPUT_NAME],
                dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        transformer.set_attn_implementation(previous)
    import onnx

    proto = onnx.load(str(raw))
    onnx.checker.check_model(proto, full_check=False)
    save_onnx(proto, path)


@contextlib.contextmanager
def warnings_quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def save_onnx(proto, path: Path) -> None:
    """Save a model; one over ~2 GB keeps its weights in `<name>.data` beside it (protobuf's limit)."""
    import onnx

    path = Path(path)
    if proto.ByteSize() > EXTERNAL_DATA_BYTES:
        onnx.save_model(proto, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save_model(proto, str(path))


def save_tokenizer(model, folder: Path, max_seq_length: int) -> None:
    """The tokenizer files, with tokenizer.json fixed for runtime use: no padding, truncation at max length.

    Some shipped tokenizer.json files pad every input to a fixed length (all-MiniLM-L6-v2: 128), which
    a raw `tokenizers` user inherits; the runtime pads per batch instead.
    """
    import json

    model.tokenizer.save_pretrained(str(folder))
    tok_file = folder / "tokenizer.json"
    data = json.loads(tok_file.read_text(encoding="utf-8"))
    data["padding"] = None
    data["truncation"] = {
        "direction": "Right",
        "max_length": int(max_seq_length),
        "strategy": "LongestFirst",
        "stride": 0,
    }
    tok_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


# --- 2. graph optimisation ---


def optimize_graph(model, fp32_path: Path, work: Path, enabled: bool = True) -> tuple[Path, dict[str, int]]:
    """onnxruntime's transformer optimizer (model_type bert): fused Attention, SkipLayerNorm, BiasGelu,
    EmbedLayerNorm. Falls back to the plain graph when the optimizer cannot handle the architecture."""
    if not enabled:
        return fp32_path, {}
    from onnxruntime.transformers.optimizer import optimize_model

    config = model[0].auto_model.config
    try:
        optimized = optimize_model(
            str(fp32_path),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # the offline fusions only; onnxruntime applies its own at session start
        )
        stats = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        path = work / "optimized.onnx"
        optimized.save_model_to_file(
            str(path), use_external_data_format=optimized.model.ByteSize() > EXTERNAL_DATA_BYTES
        )
    except Exception as err:  # an architecture the fuser does not know: quantize the plain graph
        log.warning("transformer optimizer failed (%s); quantizing the unfused graph", err)
        return fp32_path, {}
    return path, stats


# --- 3. calibration and outlier channel splitting ---


def tokenize_feeds(model, spec: ModelSpec, texts: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Batch-1 feeds (no padding) for calibration: passages with the passage prefix, queries with theirs."""
    from tokenizers import Tokenizer

    tokenizer: Tokenizer = model.tokenizer.backend_tokenizer
    tokenizer = Tokenizer.from_str(tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.enable_truncation(spec.max_seq_length)
    feeds = []
    for text in texts:
        for prefixed in (spec.passage_prefix + text, spec.query_prefix + query_like(text)):
            ids = np.array([tokenizer.encode(prefixed).ids], dtype=np.int64)
            feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    return feeds


def activation_absmax(
    model_path: Path, tensors: Sequence[str], feeds: Sequence[dict]
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of each named tensor (last axis) over all tokens of `feeds`."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(model_path))
    proto.graph.output.extend(
        onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the tensors
    options.log_severity_level = 3
    data = proto.SerializeToString() if proto.ByteSize() < EXTERNAL_DATA_BYTES else None
    if data is None:
        calib_path = model_path.with_name("calibration.onnx")
        save_onnx(proto, calib_path)
        data = str(calib_path)
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = list(tensors)
    absmax: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed), strict=True):
            m = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            absmax[name] = m if name not in absmax else np.maximum(absmax[name], m)
    return absmax


def _split_counts(absmax: np.ndarray, ratio: float) -> np.ndarray:
    """How many copies each channel becomes: ceil(a_j / T), T = ratio x the median range, raised until
    the extra channels stay within MAX_EXTRA_CHANNELS of the width."""
    threshold = ratio * float(np.median(absmax))
    budget = int(MAX_EXTRA_CHANNELS * absmax.size)
    while True:
        counts = np.maximum(1, np.ceil(absmax / max(threshold, 1e-12))).astype(np.int64)
        if int(counts.sum()) - absmax.size <= budget:
            return counts
        threshold *= 1.25


def split_outlier_channels(model_path: Path, out_path: Path, feeds: Sequence[dict], ratio: float) -> dict:
    """Outlier channel splitting on the inputs of the MatMuls with constant weights (exact in FP32).

    x' = Concat(x, Gather(x, extra)) * m and W' = [W; W[extra]]: channel j appears c_j times carrying
    x_j / c_j. Attention inputs are left alone: splitting them bought no fidelity on MiniLM/e5 and each
    split costs three small nodes per call.
    """
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(model_path))
    graph = proto.graph
    weights = {init.name: init for init in graph.initializer}
    targets = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    absmax = activation_absmax(model_path, sorted({n.input[0] for n in targets}), feeds)
    stats = {"ratio": ratio, "nodes": 0, "extra_channels": 0}
    split_inputs: dict[str, str] = {}
    inserts: list[tuple[Any, list]] = []
    for node in targets:
        source = node.input[0]
        counts = _split_counts(absmax[source], ratio)
        if counts.max() < 2:
            continue
        extra = np.repeat(np.arange(counts.size), counts - 1).astype(np.int64)
        weight = numpy_helper.to_array(weights[node.input[1]])
        weights[node.input[1]].CopyFrom(
            numpy_helper.from_array(np.concatenate([weight, weight[extra]]), node.input[1])
        )
        if source not in split_inputs:  # consumers of one tensor share its split
            base = re.sub(r"[^A-Za-z0-9_]", "_", node.name or source) + "_ocs"
            scale = (1.0 / counts[np.concatenate([np.arange(counts.size), extra])]).astype(np.float32)
            graph.initializer.extend(
                [
                    numpy_helper.from_array(extra, base + "_split_index"),
                    numpy_helper.from_array(scale, base + "_split_multiplier"),
                ]
            )
            inserts.append(
                (
                    node,
                    [
                        helper.make_node(
                            "Gather",
                            [source, base + "_split_index"],
                            [base + "_copies"],
                            axis=-1,
                            name=base + "_gather",
                        ),
                        helper.make_node(
                            "Concat",
                            [source, base + "_copies"],
                            [base + "_wide"],
                            axis=-1,
                            name=base + "_concat",
                        ),
                        helper.make_node(
                            "Mul", [base + "_wide", base + "_split_multiplier"], [base], name=base + "_mul"
                        ),
                    ],
                )
            )
            split_inputs[source] = base
            stats["extra_channels"] += int(extra.size)
        node.input[0] = split_inputs[source]
        stats["nodes"] += 1
    for node, new_nodes in inserts:  # before the first consumer keeps the graph topologically sorted
        position = list(graph.node).index(node)
        for offset, new in enumerate(new_nodes):
            graph.node.insert(position + offset, new)
    save_onnx(proto, out_path)
    stats["split_nodes"] = [new[0].name for _, new in inserts]
    return stats


# --- 4. quantization ---


def quantize_int8(
    source: Path, out_path: Path, settings: Mapping[str, Any], feeds: Sequence[dict], work: Path
) -> dict:
    """INT8 graph from the (optimized) FP32 graph: outlier splitting, then dynamic or static quantization."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    info: dict[str, Any] = {
        "mode": settings["int8_mode"],
        "per_channel": bool(settings["per_channel"]),
        "weight_type": settings["weight_type"],
        "reduce_range": resolve_reduce_range(settings),
        "keep_float": sorted(settings["keep_float"]),
    }
    ratio = float(settings["outlier_ratio"])
    prepared = source
    if ratio > 0:
        prepared = work / "split.onnx"
        info["outlier_split"] = split_outlier_channels(source, prepared, feeds, ratio)
    weight_type = QuantType.QUInt8 if settings["weight_type"] == "uint8" else QuantType.QInt8
    large = size_mb(prepared) * 2**20 > EXTERNAL_DATA_BYTES
    # The split's Gathers move activations; they are not embedding tables to quantize.
    exclude = list(info.get("outlier_split", {}).pop("split_nodes", []))
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # fused contrib ops lack shape inference
    if settings["int8_mode"] == "static":
        # The QDQ quantizer skips tensors without a known type; ORT's symbolic shape inference knows the
        # fused contrib ops (onnx's own does not).
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(
            onnx.load(str(prepared)), auto_merge=True, guess_output_rank=True
        )
        prepared = work / "typed.onnx"
        save_onnx(inferred, prepared)
        info["weight_type"] = "int8"  # the QDQ route's u8*s8 kernels want signed weights
        info["keep_float"] = sorted(KEEP_FLOAT_OPS)  # it quantizes MatMuls only
        quantize_static(
            str(prepared),
            str(out_path),
            calibration_data_reader=_FeedReader(feeds),
            quant_format=QuantFormat.QDQ,
            per_channel=bool(settings["per_channel"]),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            reduce_range=info["reduce_range"],
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=exclude,
            use_external_data_format=large,
            extra_options={**extra, "ActivationSymmetric": False, "WeightSymmetric": True},
        )
    else:
        # Full-range int8 weights with split outliers saturate the u8*s8 kernel of CPUs without VNNI
        # (mean cosine fell to 0.37 on MiniLM): reduce_range is what keeps them in range.
        quantize_dynamic(
            str(prepared),
            str(out_path),
            per_channel=info["per_channel"],
            reduce_range=info["reduce_range"],
            weight_type=weight_type,
            op_types_to_quantize=dynamic_op_types(settings["keep_float"]),
            nodes_to_exclude=exclude,
            use_external_data_format=large,
            extra_options=extra,
        )
    return info


def dynamic_op_types(keep_float: Sequence[str]) -> list[str]:
    """The operator types dynamic quantization rewrites: every kind but those export.keep_float keeps."""
    unknown = set(keep_float) - KEEP_FLOAT_OPS.keys()
    if unknown:
        raise ValueError(f"export.keep_float: unknown layer kinds {sorted(unknown)}")
    kept = [op for kind, ops in KEEP_FLOAT_OPS.items() if kind not in keep_float for op in ops]
    return [*ALWAYS_QUANTIZED, *kept]


def resolve_reduce_range(settings: Mapping[str, Any]) -> bool:
    """export.reduce_range, where null means: 7-bit weights for int8 (U8S8, saturates without VNNI)."""
    if settings["reduce_range"] is None:
        return settings["int8_mode"] == "static" or settings["weight_type"] == "int8"
    return bool(settings["reduce_range"])


class _FeedReader:
    """onnxruntime's CalibrationDataReader over pre-tokenised feeds."""

    def __init__(self, feeds: Sequence[dict]) -> None:
        self._feeds = list(feeds)
        self._iter = iter(self._feeds)

    def get_next(self):
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


def convert_fp16(source: Path, out_path: Path) -> None:
    """FP16 weights and compute for GPUs, FP32 inputs/outputs so callers do not change."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    onnx_model = OnnxModel(onnx.load(str(source)))
    onnx_model.convert_float_to_float16(keep_io_types=True)
    save_onnx(onnx_model.model, out_path)


# --- 5. the fidelity gate ---


# --- helpers ---


def encoder_config(model, spec: ModelSpec, method: str, files, settings, fusion, int8_info) -> dict:
    transformer = model[0].auto_model
    return {
        "model": spec.name,
        "method": method,
        "pooling": spec.pooling,
        "query_prefix": spec.query_prefix,
        "passage_prefix": spec.passage_prefix,
        "max_seq_length": int(spec.max_seq_length),
        "dimension": int(transformer.config.hidden_size),
        "pad_token_id": int(model.tokenizer.pad_token_id or 0),
        "inputs": INPUT_NAMES,
        "output": OUTPUT_NAME,
        "files": dict(files),
        "opset": int(settings["opset"]),
        "fused_operators": fusion,
        "int8": int8_info,
    }


def calibration_sample(corpus, splits_path, sample_texts, n: int, seed: int) -> tuple[list[str], list[str]]:
    """`sample_split` of `sample_texts`, or of the train-split chunk texts read only where picked
    (calibrating on test chunks would leak the evaluation set into the export)."""
    if sample_texts is not None:
        return sample_split(list(sample_texts), n, seed)
    if corpus is None or splits_path is None:
        raise ValueError(
            "export: give corpus (the manifest) and splits_path (train chunks only), or sample_texts"
        )
    return train_chunk_sample(corpus, splits_path, n, seed)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The ORT optimizer and quantizer log every tensor at INFO on the root logger: keep the log readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


@contextlib.contextmanager
def _scratch(path: Path) -> Iterator[Path]:
    """A work folder for ORT tools, also made the cwd and tempfile's default, so nothing they write
    (temp models, calibration caches) lands in the caller's working directory or survives the export."""
    path.mkdir(parents=True, exist_ok=True)
    cwd, tmpdir = os.getcwd(), tempfile.tempdir
    os.chdir(path)
    tempfile.tempdir = str(path)
    try:
        yield path
    finally:
        os.chdir(cwd)
        tempfile.tempdir = tmpdir
        shutil.rmtree(path, ignore_errors=True)
