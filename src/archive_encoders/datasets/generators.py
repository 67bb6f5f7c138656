"""Pseudo-query generators: the kinds of queries people type, made from the corpus itself.

Shared by the training pairs (triplets.py) and the evaluation query sets (querysets.py), so the
report can say which evaluation sets share a generator with the training data (in-distribution):

- inverse_cloze: one sentence of a passage; the passage minus that sentence is what it should find;
- keyword: 2-5 distinctive content words of a passage (TF-IDF over the corpus, one surface form per
  stem, no stop words), the way people type into a search box;
- title: a book's title, sometimes with its creator: it should find the book;
- question: a short question about a passage (an interrogative word and the words of one of its
  sentences between that sentence's two most distinctive words), the way people type a question.

Every generator is deterministic for a given numpy Generator.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from archive_encoders.datasets.text_analysis import Analyzer

GENERATORS = ("inverse_cloze", "keyword", "title", "question")

# An inverse-cloze query is one sentence a person could type, and what is left of the passage must
# still be a passage worth retrieving.
MIN_QUERY_WORDS = 4
MAX_QUERY_WORDS = 64
MIN_PASSAGE_WORDS = 12
MIN_TITLE_CHARS = 3
KEYWORDS = (2, 5)  # words in a keyword query, inclusive
MIN_KEYWORD_DOCS = 2  # a keyword must occur in this many documents: a real word, not an OCR slip
MAX_QUESTION_SPAN = 7  # words of the sentence a question keeps (between its two distinctive words)
# The interrogative a question starts with: "when" if its sentence holds a year or a date the question
# leaves out (the answer), else "what"; Russian for a Cyrillic passage.
QUESTION_WORDS = {"cyrillic": {"when": "когда", "what": "что"}, "latin": {"when": "when", "what": "what"}}

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_SPACE = re.compile(r"\s+")
_SURFACE_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})$")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def word_count(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def inverse_cloze(text: str, rng: np.random.Generator) -> tuple[str, str] | None:
    """(one sentence, the rest of the passage), or None when the passage has no usable sentence."""
    parts = sentences(text)
    if len(parts) < 2:
        return None
    words = [word_count(s) for s in parts]
    total = sum(words)
    usable = [
        i
        for i, n in enumerate(words)
        if MIN_QUERY_WORDS <= n <= MAX_QUERY_WORDS and total - n >= MIN_PASSAGE_WORDS
    ]
    if not usable:
        return None
    i = usable[int(rng.integers(len(usable)))]
    return parts[i], " ".join(parts[:i] + parts[i + 1 :])


def clean_title(title: str | None) -> str | None:
    """A title with whitespace collapsed, or None when it is too short to be a query."""
    title = _SPACE.sub(" ", title or "").strip()
    return title if len(title) >= MIN_TITLE_CHARS else None


def title_query(title: str, creator: str | None, rng: np.random.Generator) -> str:
    """The title; half of the time followed by the creator's first name listed, when there is one."""
    creator = _SPACE.sub(" ", (creator or "").split(";")[0]).strip()
    return f"{title} {creator}" if creator and rng.random() < 0.5 else title


class KeywordQueries:
    """Keyword queries over one corpus: the IDF of every stem is counted once, over all its passages."""

    def __init__(self, texts: Sequence[str], doc_ids: Sequence[str], analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        chunk_df: Counter[str] = Counter()
        docs_of: dict[str, set[str]] = {}
        for text, doc_id in zip(texts, doc_ids, strict=True):
            stems = set(analyzer.tokens(text))
            chunk_df.update(stems)
            for stem in stems:
                docs_of.setdefault(stem, set()).add(doc_id)
        self.n = max(1, len(texts))
        self.idf = {stem: math.log(self.n / df) for stem, df in chunk_df.items()}
        self.real = {stem for stem, docs in docs_of.items() if len(docs) >= MIN_KEYWORD_DOCS}

    def candidates(self, text: str) -> list[tuple[str, str, int]]:
        """(stem, first surface form, its position) of the passage's content words, most distinctive
        first (TF-IDF; ties by first occurrence)."""
        from archive_encoders.corpus.documents import is_garbage_token

        first: dict[str, tuple[str, int]] = {}
        tf: Counter[str] = Counter()
        for position, word in enumerate(self.analyzer.words(text)):
            if not self.analyzer.is_content_word(word) or is_garbage_token(word):
                continue
            stem = self.analyzer.stem(word)
            if stem not in self.real:
                continue
            tf[stem] += 1
            first.setdefault(stem, (word, position))
        ranked = sorted(tf, key=lambda s: (-tf[s] * self.idf.get(s, 0.0), first[s][1]))
        return [(s, *first[s]) for s in ranked]

    def make(self, text: str, rng: np.random.Generator) -> tuple[str, list[str]] | None:
        """(query, its stems): 2-5 of the passage's most distinctive words in passage order, or None."""
        ranked = self.candidates(text)
        low, high = KEYWORDS
        if len(ranked) < low:
            return None
        chosen = sorted(ranked[: min(len(ranked), int(rng.integers(low, high + 1)))], key=lambda c: c[2])
        return " ".join(word for _, word, _ in chosen), [stem for stem, _, _ in chosen]


def question(text: str, keywords: KeywordQueries, rng: np.random.Generator) -> str | None:
    """A short question about the passage, or None when no sentence of it has two distinctive words.

    Why this shape: people type questions of a few words ("когда основан Московский университет"),
    neither a whole sentence (inverse cloze) nor a bag of rare words (keyword). The question keeps one
    sentence's span between its two most distinctive words (TF-IDF over the corpus, as the keyword
    queries rank them), in the sentence's own order and with its function words, after an interrogative
    word; a year outside that span is left out, and the question then asks "when" (the answer is in the
    passage, not in the query). Lowercase, with a question mark, as typed.
    """
    parts = [s for s in sentences(text) if MIN_QUERY_WORDS <= word_count(s) <= MAX_QUERY_WORDS]
    for i in rng.permutation(len(parts)):
        made = _question_from(parts[int(i)], keywords)
        if made:
            return made
    return None


def _question_from(sentence: str, keywords: KeywordQueries) -> str | None:
    words = _SURFACE_WORD.findall(sentence)
    ranked = {stem: rank for rank, (stem, _, _) in enumerate(keywords.candidates(sentence))}
    analyzer = keywords.analyzer
    scored = []
    for position, word in enumerate(words):
        folded = analyzer.words(word)
        stem = analyzer.stem(folded[0]) if len(folded) == 1 else None
        if stem in ranked:
            scored.append((ranked.pop(stem), position))  # first occurrence of each stem
    if len(scored) < 2:
        return None
    (_, a), (_, b) = sorted(scored)[:2]
    first, last = min(a, b), max(a, b)
    span = words[first : last + 1] if last - first < MAX_QUESTION_SPAN else [words[first], words[last]]
    outside = words[:first] + words[last + 1 :]
    script = "cyrillic" if _CYRILLIC.search(" ".join(span)) else "latin"
    asks = "when" if any(_YEAR.match(w) for w in outside) else "what"
    return f"{QUESTION_WORDS[script][asks]} {' '.join(span).lower()}?"
