"""Chunk stage: documents.parquet -> chunks.parquet, token-bounded chunks of the clean text.

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

Speed: running the tokenizer over every chunk is the bottleneck (~2 MB/s per core here). Tokenizers
that split at whitespace before their subword model (WordPiece, SentencePiece/Metaspace: all the
encoders this project uses) are additive over whitespace-separated words, so a count is the sum of
per-word counts, and each distinct word is encoded once, in batches. `TokenCounter` checks that
property on a probe text when it loads, and falls back to encoding every chunk when it fails.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from bisect import bisect_right
from typing import Any

import numpy as np
import polars as pl

from .config import resolve_model_path
from .io import write_parquet

log = logging.getLogger(__name__)

MIN_FILL = 0.5  # a sentence cut must leave the chunk at least this full, else cut at a word
_WORD = re.compile(r"\S+")
# A sentence mark followed by space (group 1: the mark). No alternation: re then scans for the first
# character class quickly.
_SENTENCE_END = re.compile(r"([.!?…][\"'»”’)\]]*)\s+")
LEARN_BATCH = 4096  # distinct words encoded per call, joined by spaces
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


class _WordCounts(dict):
    """word -> token count; a miss (a word not seen by `learn`) is encoded on the spot."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def __missing__(self, word: str) -> int:
        n = len(self.tokenizer.encode(word, add_special_tokens=False).ids)
        self[word] = n
        return n


class TokenCounter:
    """Token counts (no special tokens) with the fast tokenizer of a model spec."""

    def __init__(self, spec: dict[str, Any]):
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer

        path = resolve_model_path(spec["path"])
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=spec.get("trust_remote_code", False)
        )
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"chunk: the tokenizer of {spec['path']!r} has no fast (Rust) version")
        # A private copy without the padding/truncation some tokenizer.json files carry (MiniLM pads to 128).
        self.tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.words = _WordCounts(self.tokenizer)
        self.additive = all(self.exact(t) == self._sum(t) for t in (PROBE, *PROBE.split("\n\n")))
        probe_words = sorted(set(PROBE.split()))
        alone = [self.words[w] for w in probe_words]  # each word encoded on its own
        self.joined_ok = True  # try the faster joined encoding on the probe words...
        self.joined_ok = self.additive and self._counts(probe_words) == alone  # ...keep it if it agrees
        if not self.additive:
            log.warning("tokenizer of %s is not additive over words: counting every chunk (slower)", path)

    def exact(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def _sum(self, text: str) -> int:
        return sum(map(self.words.__getitem__, text.split()))

    def learn(self, text: str) -> None:
        """Count the tokens of every word of `text` not seen yet, in batches."""
        if len(self.words) > 2_000_000:  # bound the cache on huge corpora
            self.words.clear()
        missing = list(set(text.split()).difference(self.words))
        for i in range(0, len(missing), LEARN_BATCH):
            batch = missing[i : i + LEARN_BATCH]
            self.words.update(zip(batch, self._counts(batch), strict=True))

    def _counts(self, words: list[str]) -> list[int]:
        """Token counts of `words`, each as if encoded alone. Encoding them joined by spaces and giving
        each token to the word its offset falls in costs half of one Encoding per word; used only when
        the probe shows it agrees (a tokenizer may give a token an offset on the space before a word)."""
        if not self.joined_ok:
            return [len(e.ids) for e in self.tokenizer.encode_batch(words, add_special_tokens=False)]
        encoding = self.tokenizer.encode(" ".join(words), add_special_tokens=False)
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        starts = np.cumsum(lengths + 1) - lengths - 1
        token_starts = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
        owner = np.searchsorted(starts, token_starts, side="right") - 1
        return np.bincount(owner, minlength=len(words)).tolist()

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


class _Words:
    """Words of one paragraph as numpy arrays: start/end offsets and cumulative token counts, built
    when a paragraph must be cut. Single-spaced text (what the clean stage writes) needs no regex."""

    __slots__ = ("cum", "ends", "starts")

    def __init__(self, text: str, lo: int, hi: int, counter: TokenCounter):
        segment = text[lo:hi]
        words = segment.split()
        n = len(words)
        if " ".join(words) == segment:
            lengths = np.fromiter(map(len, words), dtype=np.int64, count=n)
            self.ends = lo + np.cumsum(lengths) + np.arange(n)
            self.starts = self.ends - lengths
        else:
            spans = np.array([m.span() for m in _WORD.finditer(text, lo, hi)], dtype=np.int64).reshape(-1, 2)
            self.starts, self.ends = spans[:, 0], spans[:, 1]
        self.cum = np.cumsum(np.fromiter(map(counter.words.__getitem__, words), dtype=np.int64, count=n))

    def holding(self, pos: int) -> int:
        """Index of the word that holds `pos`."""
        return int(np.searchsorted(self.starts, pos, side="right")) - 1

    def tokens_from(self, pos: int, chunker: _Chunker) -> int:
        """Tokens from `pos` (inside the paragraph) to its end."""
        k = self.holding(pos)
        if self.starts[k] == pos:
            return int(self.cum[-1] - (self.cum[k - 1] if k > 0 else 0))
        return chunker.count(pos, int(self.ends[k])) + int(self.cum[-1] - self.cum[k])


class _Chunker:
    """Chunks of one document; offsets are into `text`. A chunk is (start, end, tokens)."""

    def __init__(self, text: str, counter: TokenCounter, max_tokens: int, overlap_tokens: int):
        self.text = text
        self.counter = counter
        self.max = max_tokens
        self.overlap = overlap_tokens
        self.paras: list[tuple[int, int, int]] = []  # start, end, tokens
        pos = 0
        for para in text.split("\n\n"):
            body = para.strip()
            if body:
                start = pos + len(para) - len(para.lstrip())
                self.paras.append((start, start + len(body), counter.count(body)))
            pos += len(para) + 2
        self.para_ends = [end for _, end, _ in self.paras]
        total = sum(n for _, _, n in self.paras)
        self.chars_per_token = len(text) / total if total else 4.0
        self._words: dict[int, _Words] = {}

    def words(self, pi: int) -> _Words:
        if pi not in self._words:
            start, end, _ = self.paras[pi]
            self._words[pi] = _Words(self.text, start, end, self.counter)
        return self._words[pi]

    def count(self, a: int, b: int) -> int:
        return self.counter.count(self.text[a:b])

    # -- cutting inside a paragraph --

    def cut(self, pi: int, lo: int, budget: int, min_tokens: int, words_ok: bool):
        """Cut paragraph `pi` from `lo`: (end, tokens, next) with tokens <= budget, at the last sentence
        boundary giving >= min_tokens, else (if `words_ok`) after the last word that fits, else None.
        `next` is where the following content starts (None: the paragraph is used up)."""
        w = self.words(pi)
        k0 = w.holding(lo)
        before = int(w.cum[k0 - 1]) if k0 > 0 else 0
        whole = int(w.cum[k0]) - before
        first = whole if w.starts[k0] == lo else self.count(lo, int(w.ends[k0]))
        shift = before + whole - first  # tokens(lo..ends[k]) == cum[k] - shift
        last = int(np.searchsorted(w.cum, budget + shift, side="right")) - 1  # the last word that fits
        if last < k0:
            return self.cut_word(w, k0, lo, budget) if words_ok else None
        low = max(k0, int(np.searchsorted(w.cum, min_tokens + shift)))  # the first word giving min_tokens
        high = min(last, len(w.starts) - 2)  # a boundary needs a word after it
        if low <= high:  # sentence marks in range, found by one regex scan, tried from the right
            p_start = self.paras[pi][0]
            found = [
                (m.end(1), m.end())
                for m in _SENTENCE_END.finditer(self.text, w.starts[low], w.ends[high] + 1)
            ]
            for word_end, following in reversed(found):
                k = int(np.searchsorted(w.ends, word_end))
                if (
                    k < len(w.ends)
                    and w.ends[k] == word_end
                    and _is_sentence_start(self.text, word_end - 1, following, p_start)
                ):
                    return word_end, int(w.cum[k]) - shift, following
        if not words_ok:
            return None
        following = int(w.starts[last + 1]) if last + 1 < len(w.starts) else None
        return int(w.ends[last]), int(w.cum[last]) - shift, following

    def cut_word(self, w: _Words, k: int, lo: int, budget: int):
        """A word longer than the budget (OCR debris, a URL): cut it at a token boundary."""
        word_end = int(w.ends[k])
        offsets = self.counter.offsets(self.text[lo:word_end])
        take = min(budget, len(offsets))
        while take > 1 and self.count(lo, lo + offsets[take - 1][1]) > budget:
            take -= 1
        end = max(lo + 1, lo + offsets[take - 1][1])
        following = end if end < word_end else (int(w.starts[k + 1]) if k + 1 < len(w.starts) else None)
        return end, self.count(lo, end), following

    # -- overlap --

    def tail(self, lo: int, end: int, budget: int, words_ok: bool = True) -> tuple[int | None, int]:
        """The overlap before `end` (within text[lo:end]): (start, tokens) of the trailing whole sentences
        within budget, else (if `words_ok`) of the trailing whole words; (None, 0) when nothing fits."""
        text = self.text
        if budget <= 0 or (end < len(text) and not text[end].isspace()):
            return None, 0  # no overlap after a cut inside a word: the halves would merge into one word
        start = max(lo, end - int(budget * self.chars_per_token * 2) - 16)
        window = text[start:end]
        words = window.split()
        if start > lo and words and not (text[start].isspace() or text[start - 1].isspace()):
            words = words[1:]  # the window begins inside a word
        taken = tokens = 0
        for n in map(self.counter.words.__getitem__, reversed(words)):
            if tokens + n > budget:
                break
            taken, tokens = taken + 1, tokens + n
        if not taken:
            return None, 0
        head = window.rsplit(None, taken)
        first = start + (
            window.find(head[1], len(head[0])) if len(head) > taken else len(window) - len(window.lstrip())
        )
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
            p_start, p_end, p_n = paras[pi]
            remaining = p_n if pos == p_start else self.words(pi).tokens_from(pos, self)
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
    counter.learn(text)
    return _Chunker(text, counter, max_tokens, overlap_tokens).chunks()


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    payload = f"{doc_id}\x1f{start}\x1f{end}\x1f{text}".encode()
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def chunk_documents(
    documents: str | os.PathLike,
    chunks_out: str | os.PathLike,
    chunk_settings: dict[str, Any],
    tokenizer_spec: dict[str, Any],
) -> int:
    """Read documents.parquet, write chunks.parquet (sorted by doc_id, chunk_index). Returns the count."""
    max_tokens = int(chunk_settings.get("max_tokens", 256))
    overlap_tokens = int(chunk_settings.get("overlap_tokens", 32))
    counter = TokenCounter(tokenizer_spec)
    limit = tokenizer_spec.get("max_seq_length")
    if limit and max_tokens + 2 > limit:
        log.warning(
            "chunk.max_tokens %d + 2 special tokens > max_seq_length %d: the model truncates",
            max_tokens,
            limit,
        )
    docs = pl.read_parquet(documents, columns=["doc_id", "text", "language"]).sort("doc_id")
    rows: dict[str, list] = {name: [] for name in CHUNK_SCHEMA}
    for doc_id, text, language in docs.iter_rows():
        for index, (start, end, n) in enumerate(chunk_text(text, counter, max_tokens, overlap_tokens)):
            piece = text[start:end]
            rows["chunk_id"].append(chunk_id(doc_id, start, end, piece))
            rows["doc_id"].append(doc_id)
            rows["chunk_index"].append(index)
            rows["text"].append(piece)
            rows["n_tokens"].append(n)
            rows["char_start"].append(start)
            rows["char_end"].append(end)
            rows["language"].append(language)
    frame = pl.DataFrame(rows, schema=CHUNK_SCHEMA)
    write_parquet(frame, chunks_out)
    if frame.height:
        tokens = frame["n_tokens"]
        log.info(
            "%d chunks from %d documents: tokens mean %.1f, max %d (max_tokens %d, overlap %d)",
            *(frame.height, docs.height, tokens.mean(), tokens.max(), max_tokens, overlap_tokens),
        )
    return frame.height
