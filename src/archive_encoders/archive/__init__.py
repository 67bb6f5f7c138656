"""Download stage: search archive.org, pick each item's text file, download it md5-checked and cached.

One module per concern:

- stage.py: the entry points `search`, `download`, `downloaded_file`, and `open_source`, the one place
  that reads `archive.source`;
- source.py: the `Source` interface both sources share, and the downloads.parquet rows;
- remote.py: archive.org through the `internetarchive` client (scrape-API paging, metadata, files);
- local.py: a folder in `ia download` layout, verified in place;
- fetch.py: one file into the cache (.part, Range resume, md5, atomic rename);
- budget.py: `archive.max_total_gb`;
- retry.py: the one retry policy (tenacity) and error classification by exception type;
- session.py: runtime knobs, sessions that never retry, where credentials may go;
- redact.py: secrets kept out of every log handler;
- safety.py: untrusted identifiers and file names; metadata.py: items.parquet rows; files.py: file chores.
"""

from archive_encoders.archive.errors import ArchiveError, SkipItem
from archive_encoders.archive.metadata import ITEM_SCHEMA
from archive_encoders.archive.safety import UnsafePathError
from archive_encoders.archive.source import BUDGET_REACHED, DOWNLOAD_SCHEMA, FileLimits, Source
from archive_encoders.archive.stage import download, downloaded_file, open_source, search

__all__ = [
    "BUDGET_REACHED",
    "DOWNLOAD_SCHEMA",
    "ITEM_SCHEMA",
    "ArchiveError",
    "FileLimits",
    "SkipItem",
    "Source",
    "UnsafePathError",
    "download",
    "downloaded_file",
    "open_source",
    "search",
]
