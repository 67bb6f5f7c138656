"""The download budget (`archive.max_total_gb`): how many bytes of files one run's result may hold.

What counts: the bytes of every file recorded `ok` in this run's downloads.parquet, cached or fetched
(or, for a local source, verified), in item order. A file whose size is known from the metadata is
started only if it fits beside the bytes already kept and those held for files in flight; a failed
file gives its bytes back. A file of unknown size waits until nothing else is in flight, then may
stream what is left and is cut off (its partial discarded) at the budget. The first item that does
not fit stops the run: it and every later item are recorded as skipped, "download budget reached".

Admission happens in item order on the submitting thread and, when a file might not fit, waits for
the files in flight to settle first; so which items are kept does not depend on thread timing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from archive_encoders.archive.source import BUDGET_REACHED

log = logging.getLogger(__name__)

GB = 1000**3  # archive.org and disks count in decimal gigabytes


class Budget:
    def __init__(self, max_total_gb: float | None):
        self.limit = None if max_total_gb is None else int(float(max_total_gb) * GB)
        self.kept = 0  # bytes of files recorded ok
        self.held: dict[int, int] = {}  # item index -> bytes held for a file in flight
        self.reached = False

    def admit(self, index: int, size: int | None, wait_for_one: Callable[[], None]) -> int | None:
        """The bytes item `index` may have (None: no budget, or none left: then `reached` is set).

        `wait_for_one` blocks until at least one file in flight has settled (and called `settle`).
        """
        if self.limit is None:
            return None
        while not self.reached:
            free = self.limit - self.kept - sum(self.held.values())
            if size is not None and size <= free:
                self.held[index] = size
                return size
            if not self.held:  # nothing in flight can give bytes back
                if size is None and free > 0:
                    self.held[index] = free  # unknown size: may stream what is left, alone
                    return free
                self._stop(index)
                break
            wait_for_one()
        return None

    def settle(self, index: int, row: dict[str, Any]) -> None:
        """Record a finished file: its bytes count when it is ok, and its hold is given back."""
        self.held.pop(index, None)
        if row["status"] == "ok":
            self.kept += row["bytes"] or 0
        elif row["reason"] == BUDGET_REACHED and not self.reached:
            self._stop(index)

    def _stop(self, index: int) -> None:
        self.reached = True
        log.warning(
            "download budget reached: archive.max_total_gb=%.4g holds %d bytes, %d kept; "
            "item %d and every later one are not fetched (reason %r)",
            self.limit / GB,
            self.limit,
            self.kept,
            index + 1,
            BUDGET_REACHED,
        )
