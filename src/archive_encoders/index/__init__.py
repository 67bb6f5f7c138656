"""Stage 8, index: the recommended retriever over the whole corpus (`build_index`), opened torch-free for
search (`SearchIndex`, the `archive-encoders` command)."""

from archive_encoders.index.build import build_index
from archive_encoders.index.search import SearchError, SearchIndex

__all__ = ["SearchError", "SearchIndex", "build_index"]
