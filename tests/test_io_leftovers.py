"""Leftovers of killed writes: the next write to the same target removes its stale temporaries (and only
its own), and a folder swap killed between its renames leaves the old or the new folder, never none."""

from __future__ import annotations

import fcntl
import os
import time

import pytest

from archive_encoders import io

LONG_AGO = time.time() - 3600


def leftover(folder, name, *, is_dir=False, old=True):
    path = folder / name
    if is_dir:
        path.mkdir()
        (path / "model.onnx").write_bytes(b"half a model")
    else:
        path.write_text("half")
    if old:
        os.utime(path, (LONG_AGO, LONG_AGO))
    return path


def test_next_write_removes_only_its_own_stale_temporaries(tmp_path):
    ours = [
        leftover(tmp_path, ".out.json.k3j_9x0a.tmp"),
        leftover(tmp_path, ".out.json.zz81mq4p.tmp", is_dir=True),
    ]
    kept = [
        leftover(tmp_path, ".other.json.k3j_9x0a.tmp"),  # a parallel job's target
        leftover(tmp_path, ".out.json.x.abcdefgh.tmp"),  # target out.json.x, not out.json
        leftover(tmp_path, ".out.abcdefgh.tmp"),  # target out
        leftover(tmp_path, ".out.json.youngtmp.tmp", old=False),  # may be a writer's, not yet locked
        leftover(tmp_path, "out.json.k3j_9x0a.tmp"),  # not hidden: not a temporary of ours
    ]
    held = leftover(tmp_path, ".out.json.livewrit.tmp")
    with open(held) as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # a live writer holds it
        io.write_json(tmp_path / "out.json", {"a": 1})
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in kept) and held.exists()
    assert io.read_json(tmp_path / "out.json") == {"a": 1}


def test_atomic_dir_removes_stale_temporary_folders(tmp_path):
    stale = leftover(tmp_path, ".onnx.q1w2e3r4.tmp", is_dir=True)
    other = leftover(tmp_path, ".openvino.q1w2e3r4.tmp", is_dir=True)
    with io.atomic_dir(tmp_path / "onnx") as tmp:
        (tmp / "model.onnx").write_text("whole")
    assert not stale.exists() and other.exists()
    assert (tmp_path / "onnx" / "model.onnx").read_text() == "whole"


def killed_between_renames(tmp_path):
    """The disk as the old swap left it when killed after renaming the old folder aside: a backup, the
    finished new folder still under its temporary name, no target."""
    backup = tmp_path / ".model.old"
    backup.mkdir()
    (backup / "weights").write_text("old")
    new = leftover(tmp_path, ".model.a1b2c3d4.tmp", is_dir=True)
    return tmp_path / "model", new


def test_a_swap_killed_half_way_gets_its_old_folder_back(tmp_path):
    target, _ = killed_between_renames(tmp_path)
    with pytest.raises(RuntimeError), io.atomic_dir(target) as tmp:
        (tmp / "weights").write_text("broken")
        raise RuntimeError("killed again")
    assert (target / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_the_next_swap_after_a_kill_leaves_only_the_new_folder(tmp_path):
    target, _ = killed_between_renames(tmp_path)
    with io.atomic_dir(target) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_finished_swaps_backup_is_removed(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("new")
    (tmp_path / ".model.old").mkdir()  # killed before removing the backup
    io.recover_swap(target)
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
