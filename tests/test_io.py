"""Atomic writes: the final name holds a complete file or nothing."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import polars as pl
import pytest

from archive_encoders import io


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "out.txt"
    io.write_text(target, "old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("new but broken")
        raise RuntimeError
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_parquet_round_trip_and_mode(tmp_path):
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "ю"]})
    target = tmp_path / "sub" / "t.parquet"
    io.write_parquet(frame, target)
    assert pl.read_parquet(target).equals(frame)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_atomic_dir_replaces_whole_folder(tmp_path):
    target = tmp_path / "model"
    with io.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), io.atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with io.atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_never_holds_a_bare_nan(tmp_path):
    """NaN and infinities (a metric of an empty or constant set) are written as null: strict parsers
    (JavaScript's JSON.parse, jq) refuse a bare NaN."""
    path = tmp_path / "metrics.json"
    io.write_json(
        path,
        {"ndcg": float("nan"), "rows": [1.5, float("inf"), (np.float64("nan"), -float("inf"))], "n": 3},
    )
    assert _strict_json(path.read_text(encoding="utf-8")) == {
        "ndcg": None,
        "rows": [1.5, None, [None, None]],
        "n": 3,
    }
