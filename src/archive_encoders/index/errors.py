"""The errors of a search index, and read_part, which turns a damaged file's error into one; in a module
of their own so that search.py and metadata.py (which search.py imports) can both use them;
archive_encoders.index.search re-exports the errors."""

from __future__ import annotations


class SearchError(ValueError):
    """A request the index cannot serve: a damaged folder, an empty or unreadable query."""


class IndexMismatchError(SearchError):
    """A query encoder that is not the one the index was built with (its vectors are in another space)."""


class BrokenIndex(SearchError):
    """An index folder whose files are damaged, incomplete or disagree with each other; names the file."""


def read_part(path, load):
    """`load()`, a damaged file's error turned into BrokenIndex naming `path` (pyarrow, the runtimes and
    usearch raise their own types: ValueError, OSError, RuntimeError, ONNX Runtime's, ...)."""
    try:
        return load()
    except SearchError:
        raise
    except Exception as err:
        message = f"{path}: cannot be read ({type(err).__name__}: {err}); rebuild the index"
        raise BrokenIndex(message) from None
