"""How fast each variant encodes the demo's test passages on one thread: the demo's evaluation floor.

    make demo && .venv/bin/python benchmarks/encode_rates.py [--model minilm] [--method full] [--threads 1]

Loads every transformer variant of one trained model x method through encoders.load_encoder (as
evaluation does), encodes the test split's corpus once untimed (warm-up) and once timed, and prints load
seconds and texts per second. Times evaluation's encoding: texts per variant over these rates is what
one evaluate_model job cannot go below.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from archive_encoders import paths
from archive_encoders.encoders.loader import load_encoder
from archive_encoders.runlog import OPTIONAL_PACKAGES, keep_out
from archive_encoders.variants import VARIANTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=".", type=Path)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--method", default="full")
    parser.add_argument("--threads", default=1, type=int)
    parser.add_argument("--batch-size", default=32, type=int)
    args = parser.parse_args()
    keep_out(OPTIONAL_PACKAGES)  # as a rule job: load times without bitsandbytes
    root = args.workdir
    texts = pl.read_parquet(root / "results/datasets/querysets/test/corpus.parquet")["text"].to_list()
    spec = {"name": args.model, "path": "unused", "max_seq_length": 64}
    wildcards = {"model": args.model, "method": args.method}
    print(f"{len(texts)} test passages, {args.threads} thread(s), batch {args.batch_size}")
    print(f"{'variant':<16}{'load s':>8}{'texts/s':>10}")
    for name, entry in VARIANTS.items():
        if entry.runtime == "model2vec":
            continue  # no transformer: not the floor
        folder = root / paths.ARTEFACTS[entry.artefact].format(**wildcards)
        started = time.perf_counter()
        encoder = load_encoder(name, folder, spec, args.threads)
        loaded = time.perf_counter() - started
        encoder.encode_passages(texts, batch_size=args.batch_size)
        started = time.perf_counter()
        encoder.encode_passages(texts, batch_size=args.batch_size)
        rate = len(texts) / (time.perf_counter() - started)
        print(f"{name:<16}{loaded:>8.1f}{rate:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
