"""Clean stage: downloaded text files -> documents.parquet (+ rejected.parquet).

For every item the download stage fetched (status `ok`), in identifier order:

1. decode  - bytes -> str (`clean.decode_bytes`: UTF-8, else cp1251 when it reads as Russian); an
             empty, missing or undecodable file is rejected with the reason, never a crash;
2. clean   - `clean.clean_text` (per-rule counts become `removed_<rule>` columns);
3. quality - minimum length, letter ratio, garbage-token ratio (thresholds from the config);
4. language - py3langid, offline, restricted to the configured languages plus a few that old scans
             are often in, so that a German or Latin book is detected as such and rejected;
5. duplicates - exact (same clean text) and near (MinHash/LSH from datasketch, Jaccard above
             `dedupe_threshold`): the smaller scan, or the later identifier on a tie, is dropped and
             `duplicate_of` names the one kept. Kept documents whose Jaccard reaches
             `cluster_threshold` share a `cluster_id` (the smallest doc_id in the group), so later
             stages keep related books in one split.

Both tables are sorted by doc_id: a rerun on the same inputs writes the same rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from .clean import RULES, clean_text, decode_bytes
from .io import write_parquet

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {  # the `clean` section of workflow/schemas/config.schema.yaml
    "prereform_spelling": True,
    "languages": ["ru", "en"],
    "min_chars": 1000,
    "min_letter_ratio": 0.6,
    "max_garbage_ratio": 0.25,
    "dedupe_threshold": 0.8,
    "cluster_threshold": 0.5,
    "minhash_permutations": 128,
}
# Languages old archive.org scans often come in; the detector chooses among these and the configured
# ones, so a document in one of them is rejected rather than forced into a configured language.
OTHER_LANGUAGES = ("en", "ru", "de", "fr", "la", "it", "es", "pl", "uk", "bg", "be", "sr", "nl", "sv", "cs")
LANGUAGE_SAMPLE_CHARS = 6000  # language id and quality read evenly spaced slices, not whole books
QUALITY_SAMPLE_CHARS = 40_000
SHINGLE_WORDS = 2  # word bigrams survive OCR noise better than longer shingles (one bad word spoils n)
MAX_SHINGLES = 4096  # bottom-k sample of shingle hashes: bounded cost, consistent across scans
MINHASH_SEED = 1

STATS = ["chars_in", "chars_out", *(f"removed_{rule}" for rule in RULES)]
DOCUMENT_SCHEMA = {
    "doc_id": pl.String,
    "title": pl.String,
    "creator": pl.String,
    "date": pl.String,
    "language": pl.String,
    "language_score": pl.Float64,
    "text": pl.String,
    "text_original": pl.String,
    "cluster_id": pl.String,
    **dict.fromkeys(STATS, pl.Int64),
}
REJECTED_SCHEMA = {"doc_id": pl.String, "stage": pl.String, "reason": pl.String, "duplicate_of": pl.String}


@dataclass
class Document:
    doc_id: str
    text: str
    text_original: str
    language: str
    language_score: float
    stats: dict[str, int] = field(default_factory=dict)


# --- language -------------------------------------------------------------------------------------

_identifiers: dict[tuple[str, ...], Any] = {}


def _identifier(languages: tuple[str, ...]):
    """A py3langid identifier restricted to `languages` (loading the model takes ~0.5 s: cached)."""
    if languages not in _identifiers:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages(list(languages))
        _identifiers[languages] = identifier
    return _identifiers[languages]


def candidate_languages(configured: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(configured) | set(OTHER_LANGUAGES)))


def sample_text(text: str, max_chars: int, pieces: int = 8) -> str:
    """The text itself when short, else `pieces` evenly spaced slices cut at spaces (deterministic)."""
    if len(text) <= max_chars:
        return text
    size = max_chars // pieces
    step = (len(text) - size) // (pieces - 1)
    slices = []
    for k in range(pieces):
        start = text.find(" ", k * step)
        start = k * step if start < 0 else start + 1
        slices.append(text[start : start + size].rsplit(" ", 1)[0])
    return "\n".join(slices)


def identify_language(text: str, languages: tuple[str, ...]) -> tuple[str, float]:
    lang, score = _identifier(languages).classify(sample_text(text, LANGUAGE_SAMPLE_CHARS))
    return lang, round(float(score), 4)


# --- quality --------------------------------------------------------------------------------------

_EDGE_PUNCT = "!\"#$%&'()*+,./:;<=>?@[\\]^_`{|}~«»„“”‘’—–…-"
_BAD_CHAR = re.compile(r"[^\w\-'’.]|_")
_DIGIT = re.compile(r"\d")
_ORDINAL = re.compile(r"\d+-?[^\W\d_]{1,3}")  # 1st, 19th, 2-го
_LATIN = re.compile(r"[A-Za-z]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def is_garbage_token(token: str) -> bool:
    """OCR debris: symbols inside a word ("l<f3", "^T^d^"), letters mixed with digits ("8«eondai7",
    ordinals like "19th" aside), Latin mixed with Cyrillic ("Pocciя"), or a long run of punctuation."""
    core = token.strip(_EDGE_PUNCT)
    if not core:
        return len(token) > 3
    if _BAD_CHAR.search(core):
        return True
    if _DIGIT.search(core) and not core.isdigit():
        return not (_ORDINAL.fullmatch(core) or core.replace(".", "").replace("-", "").isdigit())
    return bool(_LATIN.search(core) and _CYRILLIC.search(core))


def quality_problem(text: str, settings: dict[str, Any]) -> str | None:
    """Why `text` fails the quality filter, or None. Ratios are measured on a sample of large texts."""
    if len(text) < settings["min_chars"]:
        return f"too short: {len(text)} chars < min_chars {settings['min_chars']}"
    sample = sample_text(text, QUALITY_SAMPLE_CHARS)
    visible = len(sample) - sample.count(" ") - sample.count("\n")
    letters = sum(map(str.isalpha, sample))
    ratio = letters / visible if visible else 0.0
    if ratio < settings["min_letter_ratio"]:
        return f"letter ratio {ratio:.2f} < min_letter_ratio {settings['min_letter_ratio']}"
    tokens = sample.split()
    garbage = sum(map(is_garbage_token, tokens)) / len(tokens) if tokens else 1.0
    if garbage > settings["max_garbage_ratio"]:
        return f"garbage-token ratio {garbage:.2f} > max_garbage_ratio {settings['max_garbage_ratio']}"
    return None


# --- near duplicates ------------------------------------------------------------------------------


class _WordHashes(dict):
    """word -> crc32, computed once per distinct word (deterministic across runs, unlike hash())."""

    def __missing__(self, word: str) -> int:
        value = zlib.crc32(word.encode("utf-8"))
        self[word] = value
        return value


_word_hashes = _WordHashes()


def shingle_hashes(text: str) -> np.ndarray:
    """Sorted distinct 32-bit hashes of lowercase word bigrams; for long texts the MAX_SHINGLES
    smallest (a bottom-k sample: two near-identical texts keep near-identical samples)."""
    if len(_word_hashes) > 2_000_000:  # bound the cache on huge corpora
        _word_hashes.clear()
    words = text.lower().split()
    ids = np.fromiter(map(_word_hashes.__getitem__, words), dtype=np.uint64, count=len(words))
    if len(ids) >= SHINGLE_WORDS:
        n = len(ids) - SHINGLE_WORDS + 1
        h = ids[:n].copy()
        for j in range(1, SHINGLE_WORDS):
            h = h * np.uint64(0x100000001B3) + ids[j : j + n]  # wraps mod 2^64, as intended
        ids = h
    hashes = np.unique(((ids ^ (ids >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    return hashes[:MAX_SHINGLES]


def _identity(value):
    return value


def minhash(text: str, num_perm: int):
    from datasketch import MinHash

    sketch = MinHash(num_perm=num_perm, seed=MINHASH_SEED, hashfunc=_identity)
    sketch.update_batch(shingle_hashes(text))
    return sketch


def find_duplicates(
    docs: list[Document], threshold: float, num_perm: int
) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """{dropped doc_id: (kept doc_id, reason)} and the MinHash of every kept document.

    Larger documents are kept first (a fuller scan beats a partial one), ties by doc_id."""
    from datasketch import MinHashLSH

    order = sorted(docs, key=lambda d: (-len(d.text), d.doc_id))
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    exact: dict[str, str] = {}
    sketches: dict[str, Any] = {}
    dropped: dict[str, tuple[str, str]] = {}
    for doc in order:
        digest = hashlib.blake2b(doc.text.encode("utf-8"), digest_size=16).hexdigest()
        if digest in exact:
            dropped[doc.doc_id] = (exact[digest], "exact duplicate")
            continue
        sketch = minhash(doc.text, num_perm)
        if sketch.is_empty():  # no word pairs: two empty sketches would look identical
            exact[digest] = doc.doc_id
            sketches[doc.doc_id] = None
            continue
        matches = sorted((-sketches[other].jaccard(sketch), other) for other in lsh.query(sketch))
        if matches and -matches[0][0] >= threshold:
            similarity, original = -matches[0][0], matches[0][1]
            dropped[doc.doc_id] = (original, f"near duplicate (MinHash Jaccard {similarity:.2f})")
            continue
        exact[digest] = doc.doc_id
        sketches[doc.doc_id] = sketch
        lsh.insert(doc.doc_id, sketch)
    return dropped, sketches


def cluster_ids(sketches: dict[str, Any], threshold: float, num_perm: int) -> dict[str, str]:
    """doc_id -> the smallest doc_id of its group; groups link documents with Jaccard >= threshold."""
    from datasketch import MinHashLSH

    parent = {doc_id: doc_id for doc_id in sketches}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for doc_id in sorted(sketches):
        sketch = sketches[doc_id]
        if sketch is None:  # too short to compare: a cluster of its own
            continue
        for other in lsh.query(sketch):
            if sketches[other].jaccard(sketch) >= threshold:
                a, b = sorted((root(doc_id), root(other)))
                parent[b] = a  # the smaller id becomes the root
        lsh.insert(doc_id, sketch)
    return {doc_id: root(doc_id) for doc_id in sketches}


# --- the stage ------------------------------------------------------------------------------------


def _scalar(value) -> str | None:
    """Metadata fields come as a string or a list (archive.org); keep one string."""
    if value is None:
        return None
    if isinstance(value, list | tuple | pl.Series):
        parts = [str(v) for v in value if v is not None and str(v)]
        return "; ".join(parts) if parts else None
    return str(value)


def process_document(
    doc_id: str, data: bytes, settings: dict[str, Any], languages: tuple[str, ...]
) -> Document | tuple[str, str]:
    """One file through decode, clean, language and quality: a Document, or (stage, reason)."""
    decoded = decode_bytes(data)
    if decoded.text is None:
        return "decode", decoded.reason
    cleaned = clean_text(decoded.text, prereform_spelling=settings["prereform_spelling"])
    if not cleaned.text:
        return "quality", "no text left after cleaning"
    problem = quality_problem(cleaned.text, settings)  # first: language id on debris means nothing
    if problem:
        return "quality", problem
    lang, score = identify_language(cleaned.text, languages)
    if lang not in settings["languages"]:
        return "language", f"detected {lang} (p={score:.2f}), not in {list(settings['languages'])}"
    stats = {"chars_in": len(decoded.text), "chars_out": len(cleaned.text)}
    stats |= {f"removed_{rule}": n for rule, n in cleaned.counts.items()}
    if decoded.encoding != "utf-8":
        log.info("%s: decoded as %s", doc_id, decoded.encoding)
    return Document(doc_id, cleaned.text, cleaned.text_original, lang, score, stats)


def build_documents(
    item_list: str | os.PathLike,
    downloads: str | os.PathLike,
    documents_out: str | os.PathLike,
    rejected_out: str | os.PathLike,
    settings: dict[str, Any] | None = None,
    archive_settings: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Read items.parquet + downloads.parquet, write documents.parquet and rejected.parquet.

    `settings` is the config's `clean` section; `archive_settings` its `archive` section, which says
    where a download `path` lies (`archive.downloaded_file`: the working directory, or local_dir's
    parent for a local source). Returns (documents kept, documents rejected)."""
    from .archive import downloaded_file

    settings = {**DEFAULTS, **(settings or {})}
    languages = candidate_languages(settings["languages"])
    items = pl.read_parquet(item_list)
    meta = {row["identifier"]: row for row in items.iter_rows(named=True)}
    fetched = pl.read_parquet(downloads).filter(pl.col("status") == "ok").sort("identifier")

    kept: list[Document] = []
    rejected: list[dict[str, str | None]] = []
    for row in fetched.iter_rows(named=True):
        doc_id, path = row["identifier"], downloaded_file(row["path"], archive_settings or {})
        try:
            data = path.read_bytes()
        except OSError as err:
            outcome: Document | tuple[str, str] = ("decode", f"cannot read {row['path']}: {err.strerror}")
        else:
            outcome = process_document(doc_id, data, settings, languages)
        if isinstance(outcome, Document):
            kept.append(outcome)
        else:
            stage, reason = outcome
            log.info("rejected %s at %s: %s", doc_id, stage, reason)
            rejected.append({"doc_id": doc_id, "stage": stage, "reason": reason, "duplicate_of": None})

    num_perm = settings["minhash_permutations"]
    dropped, sketches = find_duplicates(kept, settings["dedupe_threshold"], num_perm)
    for doc_id, (original, reason) in dropped.items():
        log.info("rejected %s as duplicate of %s: %s", doc_id, original, reason)
        rejected.append({"doc_id": doc_id, "stage": "duplicate", "reason": reason, "duplicate_of": original})
    kept = [doc for doc in kept if doc.doc_id not in dropped]
    clusters = cluster_ids(sketches, settings["cluster_threshold"], num_perm)

    rows = []
    for doc in kept:
        info = meta.get(doc.doc_id, {})
        rows.append(
            {
                "doc_id": doc.doc_id,
                "title": _scalar(info.get("title")),
                "creator": _scalar(info.get("creator")),
                "date": _scalar(info.get("date")),
                "language": doc.language,
                "language_score": doc.language_score,
                "text": doc.text,
                "text_original": doc.text_original,
                "cluster_id": clusters[doc.doc_id],
                **doc.stats,
            }
        )
    documents = pl.DataFrame(rows, schema=DOCUMENT_SCHEMA).sort("doc_id")
    rejected_frame = pl.DataFrame(rejected, schema=REJECTED_SCHEMA).sort("doc_id")
    write_parquet(documents, documents_out)
    write_parquet(rejected_frame, rejected_out)
    stages = rejected_frame.group_by("stage").len().sort("stage").rows()
    log.info("%d documents kept, %d rejected %s", documents.height, rejected_frame.height, dict(stages))
    return documents.height, rejected_frame.height
