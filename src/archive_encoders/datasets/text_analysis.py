"""Words for lexical search and keyword queries: lowercase tokens, stop words out, Snowball stems.

Archive corpora mix languages (a Russian collection holds French and German books, English front
matter), often inside one document, so the analyzer works per token: a Cyrillic token is stemmed with
the Russian Snowball stemmer (PyStemmer), a Latin one with the stemmer of the first configured Latin-script
language. Stop words are the union of the configured languages' lists (bm25s ships them). The same
analyzer serves BM25 (corpus and queries alike) and the keyword-query generator, so a keyword query and
the index agree on what a word is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cached_property

# ISO 639-1 -> (Snowball algorithm, bm25s stop-word list name, script)
LANGUAGES = {
    "ru": ("russian", "STOPWORDS_RUSSIAN", "cyrillic"),
    "en": ("english", "STOPWORDS_EN", "latin"),
    "de": ("german", "STOPWORDS_GERMAN", "latin"),
    "fr": ("french", "STOPWORDS_FRENCH", "latin"),
    "it": ("italian", "STOPWORDS_ITALIAN", "latin"),
    "es": ("spanish", "STOPWORDS_SPANISH", "latin"),
    "nl": ("dutch", "STOPWORDS_DUTCH", "latin"),
    "sv": ("swedish", "STOPWORDS_SWEDISH", "latin"),
    "pt": ("portuguese", "STOPWORDS_PORTUGUESE", "latin"),
}
# Pre-1918 letters and ё fold to their modern forms before stemming, so "лѣсъ" and "лес" share a stem.
_FOLD = str.maketrans({"ё": "е", "ѣ": "е", "і": "и", "ѳ": "ф", "ѵ": "и"})
_TOKEN = re.compile(r"[^\W\d_]{2,}(?:[-'’][^\W\d_]+)*")  # words of letters (hyphenated kept whole)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


class Analyzer:
    """tokens(text) -> stems, with the surface word each stem came from (for readable queries)."""

    def __init__(self, languages: Sequence[str] = ("ru", "en")) -> None:
        unknown = [lang for lang in languages if lang not in LANGUAGES]
        if unknown:
            raise ValueError(
                f"text analysis: no stemmer for language(s) {unknown}; known: {sorted(LANGUAGES)}"
            )
        self.languages = tuple(languages) or ("en",)
        latin = [lang for lang in self.languages if LANGUAGES[lang][2] == "latin"]
        self._latin = latin[0] if latin else "en"
        self._cache: dict[str, str | None] = {}

    @cached_property
    def stop_words(self) -> frozenset[str]:
        import bm25s.stopwords as lists

        words: set[str] = set()
        for lang in {*self.languages, "ru", self._latin}:
            words.update(w.lower().translate(_FOLD) for w in getattr(lists, LANGUAGES[lang][1]))
        return frozenset(words)

    @cached_property
    def _stemmers(self):
        import Stemmer

        return {
            "cyrillic": Stemmer.Stemmer(LANGUAGES["ru"][0]),
            "latin": Stemmer.Stemmer(LANGUAGES[self._latin][0]),
        }

    def stem(self, word: str) -> str | None:
        """The stem of one lowercase, folded word, or None for a stop word (cached per distinct word)."""
        cached = self._cache.get(word, ...)
        if cached is not ...:
            return cached
        if word in self.stop_words:
            stem = None
        else:
            script = "cyrillic" if _CYRILLIC.search(word) else "latin"
            stem = self._stemmers[script].stemWord(word)
        if len(self._cache) < 2_000_000:  # bound the cache on huge corpora
            self._cache[word] = stem
        return stem

    def words(self, text: str) -> list[str]:
        """Lowercase, folded words of `text` in order (stop words included); a pre-1918 word-final ъ
        is dropped as the modern spelling does ("въ" -> "в", which is then too short to keep)."""
        words = _TOKEN.findall(text.lower().translate(_FOLD))
        if "ъ" in text or "Ъ" in text:
            words = [w[:-1] if w.endswith("ъ") else w for w in words]
            words = [w for w in words if len(w) >= 2]
        return words

    def tokens(self, text: str) -> list[str]:
        """Stems of the non-stop words of `text`, in order."""
        return [s for s in map(self.stem, self.words(text)) if s]

    def stem_spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, stem) of every non-stop word of `text`, as `tokens` reads it, by position in
        `text` itself (to mark a query's words in a passage)."""
        spans = []
        for match in _TOKEN.finditer(text):
            word = match.group().lower().translate(_FOLD)
            if word.endswith("ъ"):
                word = word[:-1]
            stem = self.stem(word) if len(word) >= 2 else None
            if stem:
                spans.append((match.start(), match.end(), stem))
        return spans

    def tokens_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.tokens(t) for t in texts]

    def is_content_word(self, word: str) -> bool:
        """A word worth typing into a search box: not a stop word, at least 3 letters."""
        return len(word) >= 3 and self.stem(word) is not None
