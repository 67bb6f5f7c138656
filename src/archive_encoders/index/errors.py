"""The errors of a search index, in a module of their own so that search.py and metadata.py (which
search.py imports) can both raise them; archive_encoders.index.search re-exports them."""

from __future__ import annotations


class SearchError(ValueError):
    """A request the index cannot serve: a damaged folder, an empty or unreadable query."""


class IndexMismatchError(SearchError):
    """A query encoder that is not the one the index was built with (its vectors are in another space)."""


class BrokenIndex(SearchError):
    """An index folder whose files are damaged, incomplete or disagree with each other; names the file."""
