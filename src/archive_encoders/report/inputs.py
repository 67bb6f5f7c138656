"""What the report reads: the JSON and Parquet contracts of the earlier stages (docs/ARCHITECTURE.md).

Every file names its own model, method and variant; nothing here reads meaning out of a path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from archive_encoders.io import read_json


@dataclass
class ReportInputs:
    rows: pl.DataFrame  # compare.py's rows.parquet: one row per retriever x test set
    train: list[dict]  # train_metrics.json of every trained model
    fidelity: dict[tuple[str, str], dict]  # (model, method) -> {variant: fidelity entry}
    evaluations: dict[tuple[str, str, str], dict]  # (model, method, variant) -> eval JSON
    probes: list[dict]  # probe.json of every model x method
    compression: list[dict]  # compression.json of every model x method
    latency: dict[tuple[str, str, str], dict]  # (model, method, variant) -> latency JSON
    lexical: dict  # the BM25 eval JSON (its latency inside)
    corpus_chunks: int
    set_info: dict[str, dict] = field(default_factory=dict)  # test set -> generator, level, n_queries


def read_fidelity(exports: Iterable[str | os.PathLike]) -> dict[tuple[str, str], dict]:
    """Every export folder's fidelity.json merged per (model, method): {variant: entry}."""
    out: dict[tuple[str, str], dict] = {}
    for folder in exports:
        path = Path(folder) / "fidelity.json"
        if path.is_file():
            report = read_json(path)
            key = (report["model"], report["method"])
            entries = {v: {**e, "threshold": report.get("threshold")} for v, e in report["variants"].items()}
            out.setdefault(key, {}).update(entries)
    return out


SIDE_RECORDS = ("probe.json", "compression.json")  # in an evaluation folder beside the variant JSONs


def read_evaluations(folders: Iterable[str | os.PathLike]) -> tuple[dict, dict[str, list[dict]]]:
    """((model, method, variant) -> eval JSON, {side record name: [records]})."""
    evaluations, side = {}, {name: [] for name in SIDE_RECORDS}
    for folder in map(Path, folders):
        for path in sorted(folder.glob("*.json")):
            record = read_json(path)
            if path.name in side:
                side[path.name].append(record)
            else:
                evaluations[(record["model"], record["method"], record["variant"])] = record
    return evaluations, side


def set_info(query_sets: str | os.PathLike, user_sets: Iterable[str | os.PathLike]) -> dict[str, dict]:
    """test set -> its set.json (generator, level, description, n_queries)."""
    folders = [
        *sorted((Path(query_sets) / "test").glob("*/set.json")),
        *(Path(u) / "set.json" for u in user_sets),
    ]
    return {(meta := read_json(p))["name"]: meta for p in folders}


def read_inputs(
    comparison: str | os.PathLike,
    models: Iterable[str | os.PathLike],
    exports: Iterable[str | os.PathLike],
    evaluations: Iterable[str | os.PathLike],
    lexical: str | os.PathLike,
    latency: Iterable[str | os.PathLike],
    corpus_chunks: int,
    query_sets: str | os.PathLike,
    user_sets: Iterable[str | os.PathLike] = (),
) -> ReportInputs:
    evals, side = read_evaluations(evaluations)
    lexical_json = next(p for p in Path(lexical).glob("*.json"))
    return ReportInputs(
        rows=pl.read_parquet(Path(comparison) / "rows.parquet"),
        train=[read_json(Path(folder) / "train_metrics.json") for folder in models],
        fidelity=read_fidelity(exports),
        evaluations=evals,
        probes=side["probe.json"],
        compression=side["compression.json"],
        latency={(r["model"], r["method"], r["variant"]): r for r in map(read_json, latency)},
        lexical=read_json(lexical_json),
        corpus_chunks=corpus_chunks,
        set_info=set_info(query_sets, user_sets),
    )


def training_kinds(train: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(model, method) -> the pseudo-query kinds its training pairs were made with (empty: none)."""
    return {(m["model"], m["method"]): set(m.get("pair_kinds") or {}) for m in train}
