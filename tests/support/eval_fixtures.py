"""Hand-made query sets and encoders for the evaluation, comparison and report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from archive_encoders.datasets import querysets as qs


class LookupEncoder:
    """Precomputed embeddings: each text maps to a fixed vector (unknown texts to a random one)."""

    query_prefix = passage_prefix = ""

    def __init__(self, table: dict[str, np.ndarray], dim: int = 256) -> None:
        self.table, self.dim = table, dim
        self.rng = np.random.default_rng(0)
        self.calls: list[int] = []

    def encode(self, texts, batch_size=32, prefix=""):
        self.calls.append(len(texts))
        vectors = np.asarray(
            [self.table.get(t, self.rng.normal(size=self.dim)) for t in texts], dtype=np.float32
        )
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def encode_queries(self, texts, batch_size=32):
        return self.encode(texts)

    def encode_passages(self, texts, batch_size=32):
        return self.encode(texts)


def write_sets(root: Path, n: int = 12) -> dict[str, str]:
    """A test split with an ICT-like set (overrides), a title set (by document) and a val split."""
    texts = {}
    for split in ("test", "val"):
        corpus = pl.DataFrame(
            {
                "corpus_id": [f"{split}-c{i}" for i in range(3 * n)],
                "doc_id": [f"{split}-d{i // 3}" for i in range(3 * n)],
                "cluster_id": [f"{split}-d{i // 3}" for i in range(3 * n)],
                "title": [f"Book {i // 3}" for i in range(3 * n)],
                "text": [f"{split} passage {i} about topic {i % 7}" for i in range(3 * n)],
            }
        )
        (root / split).mkdir(parents=True)
        corpus.write_parquet(root / split / "corpus.parquet")
        texts.update(dict(corpus.select("corpus_id", "text").rows()))
        for name, level in (("ict", "chunk"), ("title", "document")):
            folder = root / split / name
            folder.mkdir()
            queries = pl.DataFrame(
                {
                    "query_id": [f"{name}{i}" for i in range(n)],
                    "text": [f"{split} {name} query {i}" for i in range(n)],
                    "group": [f"{split}-d{i}" for i in range(n)],
                    "kind": [name] * n,
                }
            )
            target = (
                [f"{split}-c{3 * i}" for i in range(n)]
                if level == "chunk"
                else [f"{split}-d{i}" for i in range(n)]
            )
            queries.write_parquet(folder / "queries.parquet")
            qrels = {"query_id": queries["query_id"], "corpus_id": target, "score": [1] * n}
            pl.DataFrame(qrels, schema_overrides={"score": pl.Int32}).write_parquet(folder / "qrels.parquet")
            overrides = (
                {f"{split}-c{3 * i}": f"{split} cut passage {i}" for i in range(n)} if name == "ict" else {}
            )
            pl.DataFrame(list(overrides.items()), schema=qs.OVERRIDE_SCHEMA, orient="row").write_parquet(
                folder / "overrides.parquet"
            )
            texts.update(overrides)
            (folder / "set.json").write_text(
                json.dumps(
                    {
                        "name": name,
                        "split": split,
                        "level": level,
                        "generator": "inverse_cloze" if name == "ict" else "title",
                        "corpus": split,
                    }
                )
            )
    return texts


def perfect_table(n: int = 12, dim: int = 64, seed: int = 1) -> dict[str, np.ndarray]:
    """Embeddings under which every query of write_sets finds its relevant passage or book first."""
    rng = np.random.default_rng(seed)
    table = {}
    for split in ("test", "val"):
        for i in range(n):
            table[f"{split} cut passage {i}"] = rng.normal(size=dim)
            table[f"{split} ict query {i}"] = table[f"{split} cut passage {i}"]
            middle = f"{split} passage {3 * i + 1} about topic {(3 * i + 1) % 7}"
            table[middle] = rng.normal(size=dim)
            table[f"{split} title query {i}"] = table[middle]
    return table


class NoisyEncoder(LookupEncoder):
    """The perfect table blurred by `noise` (0: perfect): a stand-in for a model of a given quality."""

    def __init__(self, noise: float, seed: int, dim: int = 64) -> None:
        rng = np.random.default_rng(seed)
        table = {t: v + noise * rng.normal(size=dim) for t, v in perfect_table(dim=dim).items()}
        super().__init__(table, dim)


def fake_evaluations(
    root: Path, monkeypatch, quality: dict[tuple[str, str], float], judging_queries: Path | None = None
) -> dict[str, Path]:
    """Sets, evaluation folders of model `m` for each (method, variant) noise level, and BM25's (with a
    team's queries ranked too when `judging_queries` is given)."""
    import archive_encoders.evaluate as ev
    from archive_encoders.evaluate import dense

    write_sets(root / "querysets")
    methods = sorted({method for method, _ in quality})
    variants = sorted({variant for _, variant in quality})

    def load(variant, folder, spec, threads=None, device="cpu"):
        method = Path(folder).name
        return NoisyEncoder(quality[(method, variant)], seed=len(method) * 7 + len(variant))

    monkeypatch.setattr(dense, "load_encoder", load)
    folders = {}
    settings = {"batch_size": 8, "bootstrap_samples": 200, "sts": []}
    for method in methods:
        folders[method] = root / "eval" / "m" / method
        artefacts = {"model": root / "models" / method, "onnx": root / "onnx" / method}
        spec = {"name": "m", "path": "x"}
        sets = root / "querysets"
        ev.evaluate_model(
            artefacts,
            variants,
            sets,
            [],
            folders[method],
            spec,
            method,
            settings,
            seed=3,
            judging_queries=judging_queries,
        )
    folders["bm25"] = root / "eval" / "bm25"
    ev.evaluate_lexical(
        root / "querysets",
        [],
        folders["bm25"],
        settings["bootstrap_samples"],
        ["en"],
        seed=3,
        judging_queries=judging_queries,
    )
    return folders
