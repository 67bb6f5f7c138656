"""Shared by the export, ONNX encoder and latency tests: sample texts and one cached tiny export."""

from __future__ import annotations

import functools
import random
import shutil
import tempfile
from pathlib import Path

WORDS = [
    *("the", "of", "archive", "letter", "river", "winter", "summer", "war", "peace", "house", "science"),
    *("history", "library", "scan", "page", "город", "письмо", "книга", "дом", "война", "мир", "наука"),
    *("история", "библиотека", "страница"),
]


def random_texts(n: int, seed: int = 0, min_words: int = 1, max_words: int = 120) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]


def tiny_spec(pooling: str = "mean", **extra) -> dict:
    return {"name": "tiny", "path": "unused", "pooling": pooling, "max_seq_length": 64, **extra}


def cls_copy(tiny_model: Path, dest: Path) -> Path:
    """The tiny model with CLS pooling (same weights), as a sentence-transformers folder."""
    import json

    shutil.copytree(tiny_model, dest, dirs_exist_ok=True)
    config = dest / "1_Pooling" / "config.json"
    data = json.loads(config.read_text())
    data["pooling_mode"] = "cls"
    config.write_text(json.dumps(data))
    return dest


@functools.cache
def exported_tiny(tiny_model: Path) -> Path:
    """The tiny model exported once per test session (mean pooling, e5-style prefixes)."""
    from archive_encoders.export.onnx import export

    out = Path(tempfile.mkdtemp(prefix="tiny-onnx.")) / "onnx"
    spec = tiny_spec(query_prefix="query: ", passage_prefix="passage: ")
    export(
        tiny_model,
        out,
        spec,
        {"fidelity_samples": 16},
        sample_texts=random_texts(48, seed=1),
        seed=3,
        method="baseline",
    )
    return out
