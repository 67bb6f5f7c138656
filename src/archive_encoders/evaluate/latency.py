"""Latency of every variant of one model, measured in one job, interleaved, so the ratios hold.

Each variant runs in its own worker process (torch, onnx-fp32, onnx-int8), and the parent drives them in
rounds, A B C A B C: only one worker computes at a time and machine noise falls on every variant alike.
Separate processes also avoid an interleaving trap measured here (ORT's and torch's OpenMP threads
spinning after each run and stealing each other's cores), and give each variant its own peak RSS and load
time. The ONNX workers use the deployed OnnxEncoder settings (intra-op spinning off); every worker runs
with OMP_WAIT_POLICY=PASSIVE.

Per variant: batch-1 latency p50/p95/p99 over real query- and passage-length texts after warm-up,
throughput in texts/s at `throughput_batch`, load time, peak RSS, size on disk, threads and the CPU.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archive_encoders.config import default_seed, with_defaults
from archive_encoders.io import write_json
from archive_encoders.system import cpu_flags, cpu_model, peak_rss_mb, pick_device, size_mb
from archive_encoders.variants import variant as variant_entry

log = logging.getLogger(__name__)

ROUNDS = 5  # blocks per variant; more rounds interleave finer but pay more warm-up calls
THROUGHPUT_BATCHES = 2  # batches per throughput block
BLOCK_WARMUP = 2  # untimed calls at the start of each block: caches went cold while the others ran


def measure(
    artefacts: Mapping[str, str | os.PathLike],
    query_sets: str | os.PathLike,
    outputs: Mapping[str, str | os.PathLike],
    model_spec: Mapping[str, Any],
    latency_settings: Mapping[str, Any] | None = None,
    method: str | None = None,
    device: str = "cpu",
    seed: int | None = None,
) -> dict[str, dict]:
    """Measure every variant named in `outputs` ({variant: json path}) and write one JSON per variant."""
    seed = default_seed(seed)
    settings = with_defaults("latency", latency_settings)
    queries, passages = sample_texts(query_sets, int(settings["repeats"]), seed)
    spec = with_defaults("models.*", model_spec)
    queries = [spec["query_prefix"] + q for q in queries]
    passages = [spec["passage_prefix"] + p for p in passages]
    workers = {variant: worker_spec(variant, artefacts, model_spec, settings) for variant in outputs}
    results = run_interleaved(workers, queries, passages, settings)
    if pick_device(device) == "cuda":
        import onnxruntime as ort

        # INT8 from quantize_dynamic is a CPU format; on a GPU, torch against ORT's CUDA provider (FP32).
        on_gpu = {"torch"} | (
            {"onnx-fp32"} if "CUDAExecutionProvider" in ort.get_available_providers() else set()
        )
        gpu_workers = {v: {**w, "device": "cuda"} for v, w in workers.items() if v in on_gpu}
        for variant, gpu in run_interleaved(gpu_workers, queries, passages, settings).items():
            results[variant]["gpu"] = gpu
    cpu, flags = cpu_model(), cpu_flags()
    for variant, path in outputs.items():
        results[variant] = {
            "model": spec["name"],
            "method": method,
            "variant": variant,
            "device": "cpu",
            "cpu": cpu,
            "cpu_flags": flags,
            "threads": int(settings["threads"]),
            **results[variant],
        }
        write_json(path, results[variant])
    return results


def worker_spec(variant: str, artefacts: Mapping[str, Any], model_spec: Mapping[str, Any], settings) -> dict:
    """What a worker process loads: the variant, the folder that holds it (artefacts: {artefact kind:
    folder}, paths.ARTEFACTS), the model's spec."""
    return {
        "variant": variant,
        "path": str(artefacts[variant_entry(variant).artefact]),
        "spec": dict(model_spec),
        "threads": settings["threads"],
    }


def sample_texts(query_sets: str | os.PathLike, n: int, seed: int) -> tuple[list[str], list[str]]:
    """A fixed, seeded sample of `n` real queries (every test set's kinds pooled) and `n` real passages
    (the test corpus) from the query sets folder (paths.QUERY_SETS)."""
    from archive_encoders.datasets.querysets import read_split

    corpus, sets = read_split(query_sets, "test")
    queries = [t for s in sets.values() for t in s.queries["text"].to_list() if t]
    passages = [t for t in corpus["text"].to_list() if t]
    if not queries or not passages:
        raise ValueError(f"{query_sets}: no test queries or passages to time")

    def pick(texts: list[str]) -> list[str]:
        rng = random.Random(seed)
        return [texts[i] for i in rng.sample(range(len(texts)), min(n, len(texts)))]

    return pick(queries), pick(passages)


# --- the parent: start the workers, drive them in rounds ---


def run_interleaved(
    workers: Mapping[str, Mapping[str, Any]],
    queries: Sequence[str],
    passages: Sequence[str],
    settings: Mapping[str, Any],
) -> dict[str, dict]:
    """Start one worker per variant, then alternate their timing blocks round by round."""
    settings = with_defaults("latency", settings)
    batch = int(settings["throughput_batch"])
    throughput_texts = [passages[i % len(passages)] for i in range(batch * THROUGHPUT_BATCHES)]
    rounds = max(1, min(ROUNDS, len(queries), len(passages)))
    with tempfile.TemporaryDirectory(prefix="latency.") as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(
            json.dumps(
                {"queries": list(queries), "passages": list(passages), "throughput": throughput_texts}
            ),
            encoding="utf-8",
        )
        procs: dict[str, _Worker] = {}
        try:
            for name, spec in workers.items():  # loaded one after the other: load times do not overlap
                procs[name] = _Worker(
                    name, {**spec, "texts": str(texts_file), "warmup": int(settings["warmup"])}
                )
                procs[name].request({"cmd": "load", "batch": batch})
            timings: dict[str, dict[str, list]] = {
                n: {"query": [], "passage": [], "throughput": []} for n in procs
            }
            for r in range(rounds):
                for name, proc in procs.items():
                    block = proc.request({"cmd": "block", "round": r, "rounds": rounds, "batch": batch})
                    for key in timings[name]:
                        timings[name][key].extend(block[key])
            return {
                name: timing_summary(proc.request({"cmd": "finish"}), timings[name], batch)
                for name, proc in procs.items()
            }
        finally:
            for proc in procs.values():
                proc.close()


def timing_summary(final: Mapping[str, Any], timings: Mapping[str, list], batch: int) -> dict:
    ms = {k: np.asarray(v, dtype=np.float64) * 1000 for k, v in timings.items() if k != "throughput"}
    return {
        "batch1_ms": percentiles(np.concatenate([ms["query"], ms["passage"]])),
        "batch1_query_ms": percentiles(ms["query"]),
        "batch1_passage_ms": percentiles(ms["passage"]),
        "n_queries": int(ms["query"].size),
        "n_passages": int(ms["passage"].size),
        "throughput_batch": batch,
        "throughput_texts_per_s": round(float(np.median(timings["throughput"])), 2),
        **final,
    }


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in (50, 95, 99)}


class _Worker:
    """A `python -m archive_encoders.evaluate.latency` child speaking JSON lines on stdin/stdout."""

    def __init__(self, name: str, spec: Mapping[str, Any]) -> None:
        self.name = name
        threads = str(spec["threads"])
        env = {
            **os.environ,
            "OMP_NUM_THREADS": threads,
            # Passive OpenMP waits for every worker, torch included: with spinning barriers torch's
            # latency collapses (10x measured) as soon as anything else wants the cores, which would
            # flatter every ratio against torch on a shared machine.
            "OMP_WAIT_POLICY": "PASSIVE",
            "MKL_NUM_THREADS": threads,
            "TOKENIZERS_PARALLELISM": "false",  # the tokenizer's own thread pool would compete for the cores
            "HF_HUB_OFFLINE": "1",
            **spec.get("env", {}),  # e.g. OMP_WAIT_POLICY, to compare thread policies
        }
        src = str(Path(__file__).resolve().parents[2])  # the folder that holds archive_encoders
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archive_encoders.evaluate.latency", "--worker", json.dumps(dict(spec))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the worker's warnings go to our stderr, i.e. the rule's log
            text=True,
            env=env,
        )

    def request(self, message: Mapping[str, Any]) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(dict(message)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"latency worker {self.name} died (exit code {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"latency worker {self.name}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# --- the worker ---


def _load(spec: Mapping[str, Any]):
    """(encode(texts, batch_size), size_mb, providers) of the worker's variant."""
    from archive_encoders.encoders.loader import load_encoder

    device = spec.get("device", "cpu")
    encoder = load_encoder(spec["variant"], spec["path"], spec["spec"], int(spec["threads"]), device)

    def encode(texts, batch_size):  # the texts arrive prefixed: the same strings for every variant
        return encoder.encode(texts, batch_size=batch_size)

    if variant_entry(spec["variant"]).runtime == "torch":
        size = size_mb(spec["path"], suffixes=(".safetensors", ".bin"))
        return encode, size, [f"torch-{device}"]
    return encode, size_mb(encoder.model_path), encoder.providers


def _worker(spec: Mapping[str, Any]) -> None:
    # Protocol on a private copy of stdout; fd 1 then points at stderr so library prints cannot corrupt it.
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    texts = json.loads(Path(spec["texts"]).read_text(encoding="utf-8"))
    queries, passages, bulk = texts["queries"], texts["passages"], texts["throughput"]
    state: dict[str, Any] = {}
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["cmd"] == "load":
                started = time.perf_counter()
                encode, size_mb, providers = _load(spec)
                state = {"encode": encode, "load_time_s": round(time.perf_counter() - started, 3)}
                state.update(size_mb=round(size_mb, 2), providers=providers)
                for i in range(int(spec["warmup"])):
                    encode([queries[i % len(queries)]], 1)
                    encode([passages[i % len(passages)]], 1)
                encode(bulk[: message["batch"]], message["batch"])
                reply: dict[str, Any] = {"ok": True}
            elif message["cmd"] == "block":
                reply = _block(state["encode"], queries, passages, bulk, message)
            elif message["cmd"] == "finish":
                reply = {k: state[k] for k in ("load_time_s", "size_mb", "providers")}
                reply["peak_rss_mb"] = round(peak_rss_mb(), 1)
            else:
                reply = {"error": f"unknown command {message['cmd']!r}"}
        except Exception as err:  # reported to the parent, which raises with the variant's name
            reply = {"error": f"{type(err).__name__}: {err}"}
        channel.write(json.dumps(reply) + "\n")
        if message.get("cmd") == "finish":
            return


def _block(encode, queries, passages, bulk, message) -> dict:
    r, rounds, batch = message["round"], message["rounds"], message["batch"]
    mine_q, mine_p = queries[r::rounds], passages[r::rounds]
    for i in range(BLOCK_WARMUP):
        encode([mine_q[i % len(mine_q)]], 1)
    query_times = [_timed(encode, [q], 1) for q in mine_q]
    passage_times = [_timed(encode, [p], 1) for p in mine_p]
    throughput = len(bulk) / _timed(encode, bulk, batch)
    return {"query": query_times, "passage": passage_times, "throughput": [throughput]}


def _timed(encode, texts, batch_size) -> float:
    started = time.perf_counter()
    encode(texts, batch_size)
    return time.perf_counter() - started


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        from archive_encoders.runlog import OPTIONAL_PACKAGES, keep_out

        keep_out(OPTIONAL_PACKAGES)  # a serving process does not import them either
        _worker(json.loads(sys.argv[2]))
    else:
        sys.exit(
            "usage: python -m archive_encoders.evaluate.latency --worker SPEC_JSON  (started by measure)"
        )
