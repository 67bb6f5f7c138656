"""Shared by the serving tests: the tiny model's OpenVINO and static exports (cached per session), a
subprocess runner with torch unimportable, and a small corpus whose passages do not share words."""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from support.onnx_helpers import exported_tiny, random_texts, tiny_spec

SRC = Path(__file__).resolve().parents[2] / "src"


@functools.cache
def openvino_tiny(tiny_model: Path) -> Path:
    from archive_encoders.export.openvino import export_openvino

    out = Path(tempfile.mkdtemp(prefix="tiny-ov.")) / "openvino"
    export_openvino(
        exported_tiny(tiny_model),
        out,
        tiny_spec(query_prefix="query: ", passage_prefix="passage: "),
        {"calibration_samples": 12, "accuracy_control": False},
        {"fidelity_samples": 8},
        sample_texts=random_texts(40, seed=7),
        method="baseline",
        threads=1,
    )
    return out


@functools.cache
def static_tiny(tiny_model: Path, max_vocabulary: int | None = None) -> Path:
    from archive_encoders.export.static import export_static

    out = Path(tempfile.mkdtemp(prefix="tiny-static.")) / "static"
    export_static(
        tiny_model,
        out,
        tiny_spec(),
        {"pca_dims": 16, "max_vocabulary": max_vocabulary},
        sample_texts=random_texts(60, seed=9),
        threads=1,
        method="baseline",
    )
    return out


def run_without_torch(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run Python code (`-c script`, or a module with args) where `import torch`/`transformers` fail."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(
        "import sys\nsys.modules['torch'] = None\nsys.modules['transformers'] = None\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(SRC)])}
    cmd = [sys.executable, *(["-c", script] if script else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# Passages in four topics with disjoint words: a query made of one passage's words must find it.
TOPICS = [
    "river winter ice boat fisherman shore",
    "letter archive library scan page book",
    "город война мир история наука дом",
    "summer garden apple tree flower bee",
]


def topic_corpus(per_topic: int = 6, seed: int = 0) -> list[tuple[str, str, str]]:
    """(chunk_id, doc_id, text) rows: each passage draws 40 words from one topic."""
    rng = random.Random(seed)
    rows = []
    for t, words in enumerate(TOPICS):
        pool = words.split()
        for i in range(per_topic):
            text = " ".join(rng.choice(pool) for _ in range(40))
            rows.append((f"c{t}-{i}", f"doc{t}", f"{text}."))
    return rows
