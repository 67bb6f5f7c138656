"""BM25, the keyword search a team already has: bm25s over Snowball-stemmed words without stop words.

It indexes the same clean passages the dense models see (modern spelling; a query set's overrides
applied), so the lexical row and the dense rows answer the same question. Passages with no query word
are not returned (a keyword engine would not), so a run can be shorter than TOP_K.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .ranking import TOP_K, DocumentRanker, Run
from .text_analysis import Analyzer


class BM25Index:
    """A bm25s index over `texts`, queried with the same analyzer."""

    def __init__(self, texts: Sequence[str], analyzer: Analyzer, k1: float = 1.5, b: float = 0.75) -> None:
        import bm25s

        self.analyzer = analyzer
        self.retriever = bm25s.BM25(k1=k1, b=b)
        self.retriever.index(analyzer.tokens_many(texts), show_progress=False)
        self.vocab = self.retriever.vocab_dict
        self.size = len(texts)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for one query (zeros when no query word is in the index)."""
        tokens = [t for t in self.analyzer.tokens(query) if t in self.vocab]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def run(
        self,
        query_ids: Sequence[str],
        queries: Sequence[str],
        corpus_ids: Sequence[str],
        documents: DocumentRanker | None = None,
        k: int = TOP_K,
    ) -> Run:
        """Top-k passages (or documents, by their best passage) with a positive score, best first; ties
        by corpus position."""
        ids = list(documents.doc_ids) if documents is not None else list(corpus_ids)
        run: Run = {}
        for qid, query in zip(query_ids, queries, strict=True):
            scores = self.scores(query)
            if documents is not None:
                scores = documents.scores(scores[None, :])[0]
            order = np.lexsort((np.arange(scores.size), -scores))[:k]
            run[qid] = [(ids[j], float(scores[j])) for j in order if scores[j] > 0]
        return run
