"""Start-up of rule scripts: everything, tracebacks included, goes to the rule's log file, and optional
packages the job does not use stay out of its process."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path

# Installed packages that other packages import whenever they are installed, which a job pays for at
# start-up though only some jobs use them: transformers and peft import bitsandbytes (for QLoRA), and
# bitsandbytes imports torch's compiler stack, about 2.5 s of every model job's start.
OPTIONAL_PACKAGES = ("bitsandbytes",)


def log_to(path: str | None, level: int = logging.INFO, needs: Iterable[str] = ()) -> logging.Logger:
    """Send the root logger and stderr to `path` (Snakemake's log:), and return the package logger.

    The OPTIONAL_PACKAGES not in `needs` (e.g. a method type's `requires`) are kept out (keep_out)."""
    keep_out(set(OPTIONAL_PACKAGES) - set(needs))
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


def keep_out(packages: Iterable[str]) -> None:
    """Make `packages` look not installed to this process, before anything imports them.

    sys.modules[name] = None is Python's own marker for "blocked": importlib.util.find_spec answers None
    (which is how transformers and peft decide what is installed) and `import name` raises ImportError.
    A package that is already imported is left alone."""
    for name in packages:
        sys.modules.setdefault(name, None)
