"""Chunk stage: a shard's documents -> its chunks, token-bounded chunks of the clean text.

Chunks are cut by the tokenizer of the reference model (`chunk.tokenizer_model`):

- whole paragraphs are packed while they fit in `max_tokens`;
- a paragraph that does not fit is cut at the last sentence boundary that fits (razdel decides what is
  a sentence boundary), else at a word boundary; a single word longer than the budget (OCR debris) is
  cut at a token boundary;
- a chunk less than half full takes whole sentences from the next paragraph rather than stay tiny;
- each chunk after the first starts with an overlap: the trailing whole sentences of the previous chunk
  up to `overlap_tokens`, or, when its last sentence alone is longer, its trailing whole words.

`n_tokens` counts the chunk's tokens without special tokens: the model adds 2 more ([CLS] and [SEP],
or <s> and </s>), so keep `max_tokens` + 2 <= the model's max_seq_length. `char_start`/`char_end` are
Python string (code point) offsets: `documents.text[char_start:char_end] == text`. `chunk_id` hashes
doc_id, offsets and text, so the same input gives the same ids.

Speed: a bare pass of the tokenizer over the text costs more than everything else this stage does.
Tokenizers that split at whitespace before their subword model (WordPiece, SentencePiece/Metaspace: all
the encoders this project uses) are additive over whitespace-separated words, so a count is a sum of
per-word counts and each distinct word is encoded once (`TokenCounter`, which checks that property on a
probe text when it loads and falls back to encoding every chunk when it fails). A document is split into
words once; their offsets and a prefix sum of their token counts are numpy arrays, so the cutting below
counts tokens by subtraction and finds cut points by binary search.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.config import resolve_model_path, with_defaults
from archive_encoders.io import parquet_batches

log = logging.getLogger(__name__)

MIN_FILL = 0.5  # a sentence cut must leave the chunk at least this full, else cut at a word
_WORD = re.compile(r"\S+")
# A sentence mark followed by space (group 1: the mark). No alternation: re then scans for the first
# character class quickly.
_SENTENCE_END = re.compile(r"([.!?…][\"'»”’)\]]*)\s+")
LEARN_BATCH = 8192  # distinct words per encode_batch call (the tokenizer's threads share a batch)
MAX_CACHED_WORDS = 2_000_000  # the word -> count cache is cleared past this (~300 MB)
ROW_GROUP_CHARS = 64_000_000  # chunks are written in row groups of about this much text
CHUNK_SCHEMA = {
    "chunk_id": pl.String,
    "doc_id": pl.String,
    "chunk_index": pl.Int64,
    "text": pl.String,
    "n_tokens": pl.Int64,
    "char_start": pl.Int64,
    "char_end": pl.Int64,
    "language": pl.String,
}
PROBE = (
    "The Volga, well-known to every school-boy, rises in the Valdai Hills (229 m) and flows 3,530 km.\n\n"
    "Волга — крупнейшая река Европы; её длина 3530 км. «Кто-нибудь» видѣлъ Москву-рѣку?\n\n"
    "Naïve café-owners said: “Don't!” — and left... e.g. in 1812, i.e. 19th-c. Ɐ ⅓ ½ ☃ 中文 x²"
)


def use_tokenizer_threads(threads: int) -> None:
    """Let the Rust tokenizer use `threads` threads (its Rayon pool, built at its first parallel call,
    reads RAYON_NUM_THREADS then); with 1, no pool at all. Without this the pool takes every core of
    the machine in each of the shard jobs that run side by side."""
    threads = max(1, int(threads))
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"


class _WordCounts(dict):
    """word -> token count; a miss (a word not seen by `learn`) is encoded on the spot."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def __missing__(self, word: str) -> int:
        n = len(self.tokenizer.encode(word, add_special_tokens=False))
        self[word] = n
        return n


def _load_tokenizer(path: str, spec: Mapping[str, Any]):
    """The model's fast (Rust) tokenizer: its saved tokenizer.json when there is one (what transformers
    would load, without importing it: ~3 s per job), else through AutoTokenizer."""
    from tokenizers import Tokenizer

    saved = Path(path) / "tokenizer.json"
    if saved.is_file():
        return Tokenizer.from_file(str(saved))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=spec.get("trust_remote_code", False))
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"chunk: the tokenizer of {spec['path']!r} has no fast (Rust) version")
    return Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())


class TokenCounter:
    """Token counts (no special tokens) with the fast tokenizer of a model spec."""

    def __init__(self, spec: Mapping[str, Any]):
        path = resolve_model_path(spec["path"])
        self.tokenizer = _load_tokenizer(path, spec)
        # counts of whole texts: no padding or truncation (MiniLM's tokenizer.json pads to 128)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.words = _WordCounts(self.tokenizer)
        self.additive = all(self.exact(t) == self._sum(t) for t in (PROBE, *PROBE.split("\n\n")))
        if not self.additive:
            log.warning("tokenizer of %s is not additive over words: counting every chunk (slower)", path)

    def exact(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _sum(self, text: str) -> int:
        return sum(map(self.words.__getitem__, text.split()))

    def learn(self, words: list[str]) -> None:
        """Count the tokens of every word in `words` not seen yet, each encoded alone, in batches
        (encode_batch_fast: no offsets computed; the batch is spread over the tokenizer's threads)."""
        if len(self.words) > MAX_CACHED_WORDS:  # bound the cache on huge corpora
            self.words.clear()
        missing = list(set(words).difference(self.words))
        for i in range(0, len(missing), LEARN_BATCH):
            batch = missing[i : i + LEARN_BATCH]
            encodings = self.tokenizer.encode_batch_fast(batch, add_special_tokens=False)
            self.words.update(zip(batch, map(len, encodings), strict=True))

    def count(self, text: str) -> int:
        return self._sum(text) if self.additive else self.exact(text)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return self.tokenizer.encode(text, add_special_tokens=False).offsets


def _is_sentence_start(text: str, mark: int, at: int, lo: int) -> bool:
    """Whether razdel starts a sentence at `at`, the word after the sentence mark at `mark` (the last
    of ".", "!", "?", "…" and closing quotes/brackets before the space).

    razdel decides each boundary with its rules on a `SentSplit` (10 characters of context either side,
    plus the sentence so far for its list-item rule); evaluating those rules on this one split gives
    razdel's answer ~20x faster than segmenting a window (tests compare with `razdel.sentenize`)."""
    if text[at].islower():
        return False  # razdel's lower_right rule, without the call
    from razdel.segmenters.sentenize import SentSplit, sentenize

    split = SentSplit(text[max(lo, mark - 10) : mark], text[mark], text[mark + 1 : mark + 11])
    sentence = max(lo, mark - 64)
    for end_mark in (". ", "! ", "? ", "… "):  # the sentence so far: after the previous sentence mark
        sentence = max(sentence, text.rfind(end_mark, sentence, mark) + 2)
    split.buffer = text[sentence:mark]
    return not sentenize.join(split)


def _simple_layout(text: str, words: list[str]) -> tuple[np.ndarray, np.ndarray, list] | None:
    """Word offsets and paragraphs without a regex, for text laid out as the clean stage writes it
    (words separated by one space, paragraphs by one blank line); None for any other layout."""
    n = len(words)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=n)
    spaces, newlines, breaks = text.count(" "), text.count("\n"), text.count("\n\n")
    # All whitespace is " " and "\n", newlines come in pairs, and there are exactly n - 1 separators:
    # then every gap between two words is " " or "\n\n" and the text has no leading/trailing space.
    if not (
        n
        and newlines == 2 * breaks
        and spaces + breaks == n - 1
        and len(text) == int(lengths.sum()) + spaces + newlines
        and "\n\n\n" not in text
    ):
        return None
    paragraphs = text.split("\n\n")
    sizes = np.fromiter((p.count(" ") + 1 for p in paragraphs), dtype=np.int64, count=len(paragraphs))
    first = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=first[1:])
    gaps = np.ones(n, dtype=np.int64)  # the separator before each word
    gaps[0] = 0
    gaps[first[1:]] = 2
    starts = np.cumsum(gaps)
    starts[1:] += np.cumsum(lengths[:-1])
    ends = starts + lengths
    last = first + sizes
    paras = [(int(starts[a]), int(ends[b - 1]), int(a), int(b)) for a, b in zip(first, last, strict=True)]
    return starts, ends, paras


def _layout(text: str, words: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """(word starts, word ends, paragraphs as (start, end, first word, end word)); a paragraph is a
    stripped, non-empty piece between blank lines ("\\n\\n")."""
    simple = _simple_layout(text, words)
    if simple is not None:
        return simple
    spans = np.array([m.span() for m in _WORD.finditer(text)], dtype=np.int64).reshape(-1, 2)
    starts, ends = spans[:, 0].copy(), spans[:, 1].copy()
    paras = []
    pos = 0
    for para in text.split("\n\n"):
        body = para.strip()
        if body:
            start = pos + len(para) - len(para.lstrip())
            end = start + len(body)
            first, last = np.searchsorted(starts, [start, end])
            paras.append((start, end, int(first), int(last)))
        pos += len(para) + 2
    return starts, ends, paras


class _Chunker:
    """Chunks of one document; offsets are into `text`. A chunk is (start, end, tokens).

    Words are indexed over the whole document: `starts`/`ends` their offsets, `c[k]` the tokens of
    words 0..k-1 (so words i..j-1 hold c[j] - c[i] tokens). A paragraph is (start, end, tokens, first
    word, end word)."""

    def __init__(self, text: str, counter: TokenCounter, max_tokens: int, overlap_tokens: int):
        self.text = text
        self.counter = counter
        self.max = max_tokens
        self.overlap = overlap_tokens
        words = text.split()
        counter.learn(words)
        counts = np.fromiter(map(counter.words.__getitem__, words), dtype=np.int64, count=len(words))
        prefix = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(counts, out=prefix[1:])
        starts, ends, layout = _layout(text, words)
        # Python lists: bisect and indexing on them cost a fraction of numpy's per-call overhead
        self.c, self.starts, self.ends = prefix.tolist(), starts.tolist(), ends.tolist()
        c = self.c
        self.paras: list[tuple[int, int, int, int, int]] = [
            (s, e, c[b] - c[a] if counter.additive else counter.exact(text[s:e]), a, b)
            for s, e, a, b in layout
        ]
        self.para_ends = [p[1] for p in self.paras]
        total = sum(p[2] for p in self.paras)
        self.chars_per_token = len(text) / total if total else 4.0

    def count(self, a: int, b: int) -> int:
        return self.counter.count(self.text[a:b])

    def holding(self, pi: int, pos: int) -> int:
        """Index of the word of paragraph `pi` that holds `pos`."""
        _, _, _, first, last = self.paras[pi]
        return bisect_right(self.starts, pos, first, last) - 1

    def tokens_from(self, pi: int, pos: int) -> int:
        """Tokens from `pos` (inside paragraph `pi`) to its end."""
        last = self.paras[pi][4]
        k = self.holding(pi, pos)
        if self.starts[k] == pos:
            return self.c[last] - self.c[k]
        return self.count(pos, self.ends[k]) + self.c[last] - self.c[k + 1]

    # -- cutting inside a paragraph --

    def cut(self, pi: int, lo: int, budget: int, min_tokens: int, words_ok: bool):
        """Cut paragraph `pi` from `lo`: (end, tokens, next) with tokens <= budget, at the last sentence
        boundary giving >= min_tokens, else (if `words_ok`) after the last word that fits, else None.
        `next` is where the following content starts (None: the paragraph is used up)."""
        p_start, _, _, p0, p1 = self.paras[pi]
        starts, ends, c = self.starts, self.ends, self.c
        k0 = self.holding(pi, lo)
        whole = c[k0 + 1] - c[k0]
        first = whole if starts[k0] == lo else self.count(lo, ends[k0])
        base = c[k0 + 1] - first  # tokens(lo..ends[k]) == c[k + 1] - base for k >= k0
        last = bisect_right(c, budget + base, p0 + 1, p1 + 1) - 2  # the last word that fits
        if last < k0:
            return self.cut_word(k0, p1, lo, budget) if words_ok else None
        low = max(k0, bisect_left(c, min_tokens + base, p0 + 1, p1 + 1) - 1)  # the first giving min_tokens
        high = min(last, p1 - 2)  # a boundary needs a word after it
        if low <= high:  # sentence marks in range, found by one regex scan, tried from the right
            found = [
                (m.end(1), m.end()) for m in _SENTENCE_END.finditer(self.text, starts[low], ends[high] + 1)
            ]
            for word_end, following in reversed(found):
                k = bisect_left(ends, word_end, p0, p1)
                if (
                    k < p1
                    and ends[k] == word_end
                    and _is_sentence_start(self.text, word_end - 1, following, p_start)
                ):
                    return word_end, c[k + 1] - base, following
        if not words_ok:
            return None
        following = starts[last + 1] if last + 1 < p1 else None
        return ends[last], c[last + 1] - base, following

    def cut_word(self, k: int, p1: int, lo: int, budget: int):
        """A word longer than the budget (OCR debris, a URL): cut it at a token boundary."""
        word_end = self.ends[k]
        offsets = self.counter.offsets(self.text[lo:word_end])
        take = min(budget, len(offsets))
        while take > 1 and self.count(lo, lo + offsets[take - 1][1]) > budget:
            take -= 1
        end = max(lo + 1, lo + offsets[take - 1][1])
        following = end if end < word_end else (self.starts[k + 1] if k + 1 < p1 else None)
        return end, self.count(lo, end), following

    # -- overlap --

    def trailing_words(self, lo: int, end: int, budget: int) -> tuple[int, int]:
        """(start, tokens) of the most whole words before `end` that fit in `budget`, taken from the
        window of about twice the budget's characters before `end` (within text[lo:end]); (end, 0) when
        none fits."""
        starts, ends, c = self.starts, self.ends, self.c
        window = max(lo, end - int(budget * self.chars_per_token * 2) - 16)
        k_hi = bisect_right(ends, end)  # words before k_hi end by `end`
        k_lo = bisect_left(starts, window, 0, k_hi)  # a word cut by the window's start does not count
        j = max(k_lo, bisect_left(c, c[k_hi] - budget, 0, k_hi))  # words j..k_hi-1 fit
        first, tokens = (starts[j], c[k_hi] - c[j]) if j < k_hi else (end, 0)
        if j == k_lo and window == lo and k_lo > 0 and ends[k_lo - 1] > lo:
            # the chunk starts inside a word (after a word cut at a token boundary): its rest is a word
            n = self.counter.words[self.text[lo : ends[k_lo - 1]]]
            if tokens + n <= budget:
                first, tokens = lo, tokens + n
        return first, tokens

    def tail(self, lo: int, end: int, budget: int, words_ok: bool = True) -> tuple[int | None, int]:
        """The overlap before `end` (within text[lo:end]): (start, tokens) of the trailing whole sentences
        within budget, else (if `words_ok`) of the trailing whole words; (None, 0) when nothing fits."""
        text = self.text
        if budget <= 0 or (end < len(text) and not text[end].isspace()):
            return None, 0  # no overlap after a cut inside a word: the halves would merge into one word
        first, tokens = self.trailing_words(lo, end, budget)
        if first >= end:
            return None, 0
        paragraph = text.find("\n", first, end)  # a paragraph start is a sentence start
        limit = end if paragraph < 0 else paragraph
        for m in _SENTENCE_END.finditer(text, max(lo, first - 8), limit):  # sentence starts, earliest first
            at = m.end()
            if at >= first and _is_sentence_start(text, m.end(1) - 1, at, lo):
                return at, self.count(at, end)
        if paragraph >= 0:
            at = _WORD.search(text, paragraph).start()
            return at, self.count(at, end)
        if not words_ok:
            return None, 0
        return first, (tokens if self.counter.additive else self.count(first, end))

    # -- the loop --

    def chunks(self) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        paras = self.paras
        pi, pos = 0, (paras[0][0] if paras else 0)
        ov_start, ov_n = None, 0
        while pi < len(paras):
            p_start, p_end, p_n = paras[pi][:3]
            remaining = p_n if pos == p_start else self.tokens_from(pi, pos)
            if ov_start is not None and remaining <= self.max < ov_n + remaining:
                # keep the rest of the paragraph whole: a smaller overlap, whole sentences or none
                ov_start, ov_n = self.tail(out[-1][0], out[-1][1], self.max - remaining, words_ok=False)
            content = pos
            start = pos if ov_start is None else ov_start
            n = ov_n
            if n + remaining <= self.max:
                n, end = n + remaining, p_end
                pi += 1
                while pi < len(paras) and n + paras[pi][2] <= self.max:
                    n, end = n + paras[pi][2], paras[pi][1]
                    pi += 1
                pos = paras[pi][0] if pi < len(paras) else end
                if pi < len(paras) and n < MIN_FILL * self.max:  # too small: take sentences from the next one
                    cut = self.cut(pi, pos, self.max - n, 1, words_ok=False)
                    if cut:
                        end, n, pos = cut[0], n + cut[1], cut[2]
            else:
                end, got, pos = self.cut(pi, pos, self.max - n, int(MIN_FILL * self.max) - n, words_ok=True)
                n += got
                if pos is None:
                    pi += 1
                    pos = paras[pi][0] if pi < len(paras) else end
            if not self.counter.additive:
                planned = end
                start, end, n = self.fit(start, content, end)
                if end < planned:  # words given back go to the next chunk
                    pos = _WORD.search(self.text, end).start()
                    pi = bisect_right(self.para_ends, pos)
            out.append((start, end, n))
            ov_start, ov_n = self.tail(start, end, self.overlap) if pi < len(paras) else (None, 0)
        return out

    def fit(self, start: int, content: int, end: int) -> tuple[int, int, int]:
        """Non-additive tokenizers: the exact count decides; drop the overlap, then trailing words."""
        n = self.count(start, end)
        if n > self.max and start < content:
            start, n = content, self.count(content, end)
        while n > self.max:
            cut = max(self.text.rfind(" ", content, end), self.text.rfind("\n", content, end))
            if cut <= content:
                break  # one word over the limit: nothing smaller to give
            end = cut
            while self.text[end - 1].isspace():
                end -= 1
            n = self.count(start, end)
        return start, end, n


def chunk_text(
    text: str, counter: TokenCounter, max_tokens: int, overlap_tokens: int
) -> list[tuple[int, int, int]]:
    """(char_start, char_end, n_tokens) of every chunk of `text`."""
    if overlap_tokens >= max_tokens:
        raise ValueError("chunk: overlap_tokens must be smaller than max_tokens")
    return _Chunker(text, counter, max_tokens, overlap_tokens).chunks()


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    payload = f"{doc_id}\x1f{start}\x1f{end}\x1f{text}".encode()
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def chunk_documents(
    documents: str | os.PathLike,
    chunks_out: str | os.PathLike,
    chunk_settings: Mapping[str, Any] | None,
    tokenizer_spec: Mapping[str, Any],
    threads: int = 1,
) -> int:
    """Read a documents table (a shard's, or a whole documents.parquet), write its chunks sorted by
    doc_id, chunk_index, in row groups as they come. Returns the number of chunks.

    `threads` go to the tokenizer's batch encoding of new words (the cutting is Python, one thread)."""
    use_tokenizer_threads(threads)
    settings = with_defaults("chunk", chunk_settings)
    max_tokens, overlap_tokens = settings["max_tokens"], settings["overlap_tokens"]
    counter = TokenCounter(tokenizer_spec)
    limit = tokenizer_spec.get("max_seq_length")
    if limit and max_tokens + 2 > limit:
        log.warning(
            "chunk.max_tokens %d + 2 special tokens > max_seq_length %d: the model truncates",
            max_tokens,
            limit,
        )
    docs = pl.read_parquet(documents, columns=["doc_id", "text", "language"]).sort("doc_id")
    total = tokens = longest = chars = 0
    rows: list[tuple] = []
    with parquet_batches(chunks_out, CHUNK_SCHEMA) as write:  # a file with no row group when no chunk
        for i, (doc_id, text, language) in enumerate(docs.iter_rows()):
            for index, (start, end, n) in enumerate(chunk_text(text, counter, max_tokens, overlap_tokens)):
                piece = text[start:end]
                rows.append(
                    (chunk_id(doc_id, start, end, piece), doc_id, index, piece, n, start, end, language)
                )
                chars, tokens, longest = chars + len(piece), tokens + n, max(longest, n)
            if rows and (chars >= ROW_GROUP_CHARS or i == docs.height - 1):
                write(pl.DataFrame(rows, schema=CHUNK_SCHEMA, orient="row"))
                total, rows, chars = total + len(rows), [], 0
    if total:
        log.info(
            "%d chunks from %d documents: tokens mean %.1f, max %d (max_tokens %d, overlap %d)",
            *(total, docs.height, tokens / total, longest, max_tokens, overlap_tokens),
        )
    return total
