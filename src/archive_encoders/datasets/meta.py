"""The metadata every training dataset's JSON holds (docs/ARCHITECTURE.md, "Dataset metadata")."""

from __future__ import annotations

import time


def dataset_meta(name: str, rows: int, source_chunks: int, corpus_chunks: int, started: float, **extra):
    """The metadata every dataset JSON holds (fields in docs/ARCHITECTURE.md, "Dataset metadata")."""
    return {
        "dataset": name,
        "rows": rows,
        "source_chunks": source_chunks,
        "corpus_chunks": corpus_chunks,
        "build_s": round(time.perf_counter() - started, 3),
        **extra,
    }
