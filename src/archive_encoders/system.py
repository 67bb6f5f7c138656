"""What a job runs on and what it used: device choice, peak memory, CPU model and instruction sets,
size on disk. One implementation of each for training, export, evaluation and latency."""

from __future__ import annotations

import os
import platform
import resource
import sys
from functools import cache
from pathlib import Path

# The instruction sets that decide INT8/BF16 speed on x86 (VNNI and AMX make ONNX Runtime's and
# OpenVINO's INT8 GEMMs several times faster than AVX2 alone), as /proc/cpuinfo names them.
SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "neon")


def pick_device(preference: str = "auto") -> str:
    """`auto`: cuda when torch sees a GPU, else cpu (also when torch is not installed); `cuda` without a
    GPU is an error, so a job that was promised one fails at once instead of crawling on the CPU."""
    if preference == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        available = False
    else:
        available = torch.cuda.is_available()
    if preference == "cuda" and not available:
        raise RuntimeError("device: cuda was asked for but no GPU is visible")
    if preference not in ("auto", "cuda"):
        raise ValueError(f"device {preference!r}: expected auto, cpu or cuda")
    return "cuda" if available else "cpu"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (model loading included)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@cache
def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_model() -> str:
    """The CPU's model name and the cores this process may use, e.g. 'Intel Xeon ... (2 cores)'."""
    name = _cpuinfo().get("model name") or platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} ({cores} cores)"


def cpu_flags() -> list[str]:
    """Which of SIMD_FLAGS this CPU has (recorded with every latency figure)."""
    flags = set((_cpuinfo().get("flags") or _cpuinfo().get("Features") or "").split())
    return [f for f in SIMD_FLAGS if f in flags]


def size_mb(path: str | os.PathLike, suffixes: tuple[str, ...] | None = None) -> float:
    """Size on disk in MiB: a file with its weights sibling (`<file>.data`, `<name>.bin`), or
    the files of a folder (only those with one of `suffixes`, e.g. weights, when given)."""
    path = Path(path)
    if path.is_dir():
        files = [f for f in path.rglob("*") if f.is_file() and (suffixes is None or f.suffix in suffixes)]
        return sum(f.stat().st_size for f in files) / 2**20
    # ONNX over 2 GB keeps its weights in <file>.data; OpenVINO's <name>.xml has them in <name>.bin
    extra = path.with_suffix(".bin") if path.suffix == ".xml" else Path(str(path) + ".data")
    return (path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)) / 2**20


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MiB (Linux /proc; None elsewhere): a per-step figure that
    shows whether memory stays flat, where the peak only ever grows."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def hardware(device: str) -> dict[str, str | None]:
    """The hardware class a cost figure was measured on: device, CPU model (and cores), GPU model."""
    gpu = None
    if device == "cuda":
        import torch

        gpu = torch.cuda.get_device_name(0)
    return {"device": device, "cpu": cpu_model(), "gpu": gpu}


@cache
def _libc():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> None:
    """Hand memory the allocator holds but no longer uses back to the OS (glibc's malloc_trim).

    A CPU training step frees gigabytes of activations whose sizes change with every batch's padding;
    glibc keeps those pages in its arenas, so resident memory creeps up step after step although the
    live tensors do not grow. Trimming after each step keeps it at what the step needs."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
