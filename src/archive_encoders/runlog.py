"""Logging for rule scripts: everything, tracebacks included, goes to the rule's log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to(path: str | None, level: int = logging.INFO) -> logging.Logger:
    """Send the root logger and stderr to `path` (Snakemake's log:), and return the package logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stderr = stream
        handlers = [logging.StreamHandler(stream)]
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    return logging.getLogger("archive_encoders")
