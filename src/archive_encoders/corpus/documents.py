"""Clean stage: downloaded text files -> clean documents, rejections and MinHash signatures per shard;
near-duplicates and clusters once over the signatures of every shard.

For every item of a shard that the download stage fetched (status `ok`), in identifier order
(`clean_shard`, one job per shard):

1. decode  - bytes -> str (`clean.decode_bytes`: UTF-8, else cp1251 when it reads as Russian); an
             empty, missing or undecodable file is rejected with the reason, never a crash;
2. clean   - `clean.clean_text` (per-rule counts become `removed_<rule>` columns);
3. quality - minimum length, letter ratio, garbage-token ratio (thresholds from the config);
4. language - py3langid, offline, restricted to the configured languages plus a few that old scans
             are often in, so that a German or Latin book is detected as such and rejected;
5. signature - the document's length, a digest of its clean text and a MinHash of its word bigrams.

Then, over the signatures alone (`dedupe_corpus`, one job for the whole corpus, so a pair that falls
into two shards is found): exact duplicates (same digest) and near ones (MinHash/LSH from datasketch,
Jaccard above `dedupe_threshold`): the smaller scan, or the later identifier on a tie, is dropped and
`duplicate_of` names the one kept. Kept documents whose Jaccard reaches `cluster_threshold` share a
`cluster_id` (the smallest doc_id in the group), so later stages keep related books in one split.

`build_documents` runs the same steps on a whole corpus in one process and writes the single
documents/rejected tables the sharded stage is read back as (`corpus.scan_documents`). Every table is
sorted by doc_id: a rerun on the same inputs writes the same rows.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.config import with_defaults
from archive_encoders.corpus.clean import RULES, clean_text, decode_bytes
from archive_encoders.corpus.dedupe import SIGNATURE_SCHEMA, Signature, dedupe_table, minhash, text_digest
from archive_encoders.io import parquet_batches, write_parquet

log = logging.getLogger(__name__)

# Languages old archive.org scans often come in; the detector chooses among these and the configured
# ones, so a document in one of them is rejected rather than forced into a configured language.
OTHER_LANGUAGES = ("en", "ru", "de", "fr", "la", "it", "es", "pl", "uk", "bg", "be", "sr", "nl", "sv", "cs")
LANGUAGE_SAMPLE_CHARS = 6000  # language id and quality read evenly spaced slices, not whole books
QUALITY_SAMPLE_CHARS = 40_000
ROW_GROUP_CHARS = 64_000_000  # a shard's documents are written in row groups of about this much text

STATS = ["chars_in", "chars_out", *(f"removed_{rule}" for rule in RULES)]
META = {"title": pl.String, "creator": pl.String, "date": pl.String}
# What the clean stage reads about an item: its metadata and where its downloaded file is.
ITEM_LIST_SCHEMA = {"identifier": pl.String, **META, "path": pl.String, "status": pl.String, "md5": pl.String}
SHARD_DOCUMENT_SCHEMA = {
    "doc_id": pl.String,
    **META,
    "language": pl.String,
    "language_score": pl.Float64,
    "text": pl.String,
    "text_original": pl.String,
    **dict.fromkeys(STATS, pl.Int64),
}
# The corpus as read back: a shard's columns plus the cluster from the dedupe step, in this order.
DOCUMENT_SCHEMA = {
    **{k: v for k, v in SHARD_DOCUMENT_SCHEMA.items() if k not in STATS},
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
    meta: dict[str, str | None] = field(default_factory=dict)
    digest: str = ""
    minhash: np.ndarray | None = None  # uint32 hash values


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


def quality_problem(text: str, settings: Mapping[str, Any]) -> str | None:
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


# --- signatures: MinHash of word bigrams ----------------------------------------------------------
# Words are runs of bytes other than ASCII whitespace in the lowercased UTF-8 text (the clean text has
# no other whitespace). Every step is a numpy pass over the bytes, in blocks: ~30 MB/s where hashing
# word by word in Python managed ~12.


# --- near duplicates, over signatures -------------------------------------------------------------


# --- one document ---------------------------------------------------------------------------------


def _scalar(value) -> str | None:
    """Metadata fields come as a string or a list (archive.org); keep one string."""
    if value is None:
        return None
    if isinstance(value, list | tuple | pl.Series):
        parts = [str(v) for v in value if v is not None and str(v)]
        return "; ".join(parts) if parts else None
    return str(value)


def process_document(
    doc_id: str, data: bytes, settings: Mapping[str, Any], languages: tuple[str, ...]
) -> Document | tuple[str, str]:
    """One file through decode, clean, quality, language and signature: a Document, or (stage, reason)."""
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
    doc = Document(doc_id, cleaned.text, cleaned.text_original, lang, score, stats)
    doc.digest = text_digest(cleaned.text)
    doc.minhash = minhash(cleaned.text, settings["minhash_permutations"])
    return doc


class _Cleaner:
    """Cleans item rows (ITEM_LIST_SCHEMA) into Documents or rejection rows; picklable for a pool."""

    def __init__(self, settings: Mapping[str, Any], archive_settings: Mapping[str, Any] | None):
        self.settings = dict(settings)
        self.archive_settings = dict(archive_settings or {})
        self.languages = candidate_languages(self.settings["languages"])

    def __call__(self, row: Mapping[str, Any]) -> Document | dict[str, str | None]:
        from archive_encoders.archive import downloaded_file

        doc_id = row["identifier"]
        try:
            data = downloaded_file(row["path"], self.archive_settings).read_bytes()
        except OSError as err:
            outcome: Document | tuple[str, str] = ("decode", f"cannot read {row['path']}: {err.strerror}")
        else:
            outcome = process_document(doc_id, data, self.settings, self.languages)
        if isinstance(outcome, Document):
            outcome.meta = {name: row.get(name) for name in META}
            return outcome
        stage, reason = outcome
        log.info("rejected %s at %s: %s", doc_id, stage, reason)
        return {"doc_id": doc_id, "stage": stage, "reason": reason, "duplicate_of": None}


def clean_items(
    rows: list[dict[str, Any]],
    settings: Mapping[str, Any],
    archive_settings: Mapping[str, Any] | None,
    workers: int = 1,
) -> Iterator[Document | dict[str, str | None]]:
    """Every fetched row (status `ok`), in the order given, through `_Cleaner`; `workers` > 1 spreads
    the documents over that many processes (cleaning is pure Python: threads would share one core)."""
    cleaner = _Cleaner(settings, archive_settings)
    fetched = [row for row in rows if row["status"] == "ok"]
    if workers <= 1 or len(fetched) <= 1:
        yield from map(cleaner, fetched)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(fetched))) as pool:
        yield from pool.map(cleaner, fetched)


def item_list(item_list_path: str | os.PathLike, downloads: str | os.PathLike) -> pl.DataFrame:
    """items.parquet + downloads.parquet -> one row per item (ITEM_LIST_SCHEMA), sorted by identifier.
    An item the download stage has no row for gets status null (not cleaned); a column either table
    lacks (hand-made inputs) is null."""
    items = _with_columns(pl.read_parquet(item_list_path), ["identifier", *META])
    duplicated = items.filter(pl.col("identifier").is_duplicated())["identifier"].unique().sort().to_list()
    if duplicated:
        raise ValueError(f"{item_list_path}: identifiers listed twice: {duplicated[:5]}")
    as_text = [name for name in META if items.schema[name] != pl.String]  # lists from archive.org metadata
    meta = items.with_columns(pl.col(name).map_elements(_scalar, return_dtype=pl.String) for name in as_text)
    fetched = _with_columns(pl.read_parquet(downloads), ["identifier", "path", "status", "md5"])
    rows = meta.join(fetched, on="identifier", how="left").sort("identifier")
    return rows.select(pl.col(name).cast(dtype) for name, dtype in ITEM_LIST_SCHEMA.items())


def _with_columns(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    return frame.select(pl.col(n) if n in frame.columns else pl.lit(None, pl.String).alias(n) for n in names)


# --- the stage: one shard -------------------------------------------------------------------------


def _document_row(doc: Document) -> dict[str, Any]:
    return {
        "doc_id": doc.doc_id,
        **doc.meta,
        "language": doc.language,
        "language_score": doc.language_score,
        "text": doc.text,
        "text_original": doc.text_original,
        **doc.stats,
    }


def clean_shard(
    shard_items: str | os.PathLike,
    documents_out: str | os.PathLike,
    rejected_out: str | os.PathLike,
    signatures_out: str | os.PathLike,
    settings: Mapping[str, Any] | None = None,
    archive_settings: Mapping[str, Any] | None = None,
    threads: int = 1,
) -> tuple[int, int]:
    """One shard's item list (ITEM_LIST_SCHEMA) -> its documents (SHARD_DOCUMENT_SCHEMA), rejections and
    signatures, each sorted by doc_id. Documents are written in row groups as they come, so memory
    holds about one row group, not the shard. Returns (documents kept, documents rejected)."""
    settings = with_defaults("clean", settings)
    rows = pl.read_parquet(shard_items).sort("identifier").to_dicts()
    rejected: list[dict[str, str | None]] = []
    signatures: dict[str, list] = {name: [] for name in SIGNATURE_SCHEMA}
    batch: list[dict[str, Any]] = []
    batch_chars = kept = 0
    with parquet_batches(documents_out, SHARD_DOCUMENT_SCHEMA) as write:
        for outcome in clean_items(rows, settings, archive_settings, workers=threads):
            if not isinstance(outcome, Document):
                rejected.append(outcome)
                continue
            kept += 1
            for name, value in zip(SIGNATURE_SCHEMA, _signature_values(outcome), strict=True):
                signatures[name].append(value)
            batch.append(_document_row(outcome))
            batch_chars += 2 * len(outcome.text)
            if batch_chars >= ROW_GROUP_CHARS:
                write(batch)
                batch, batch_chars = [], 0
        if batch or not kept:
            write(batch)
    rejections = pl.DataFrame(rejected, schema=REJECTED_SCHEMA)
    write_parquet(rejections, rejected_out)
    write_parquet(pl.DataFrame(signatures, schema=SIGNATURE_SCHEMA), signatures_out)
    stages = dict(rejections.group_by("stage").len().sort("stage").rows())
    log.info("%s: %d documents kept, %d rejected %s", shard_items, kept, len(rejected), stages)
    return kept, len(rejected)


def _signature_values(doc: Document) -> tuple[str, int, str, list[int]]:
    return doc.doc_id, len(doc.text), doc.digest, doc.minhash.tolist()


# --- the whole corpus in one process --------------------------------------------------------------


def build_documents(
    item_list_path: str | os.PathLike,
    downloads: str | os.PathLike,
    documents_out: str | os.PathLike,
    rejected_out: str | os.PathLike,
    settings: Mapping[str, Any] | None = None,
    archive_settings: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """items.parquet + downloads.parquet -> documents.parquet (DOCUMENT_SCHEMA) and rejected.parquet,
    all in this process: the tables the workflow's shards are read back as (`corpus.scan_documents`,
    `corpus.scan_rejected`), for small corpora and for checking the sharded stage against.

    `settings` is the config's `clean` section; `archive_settings` its `archive` section, which says
    where a download `path` lies (`archive.downloaded_file`: the working directory, or local_dir's
    parent for a local source). Returns (documents kept, documents rejected)."""
    settings = with_defaults("clean", settings)
    rows = item_list(item_list_path, downloads).to_dicts()
    docs: list[Document] = []
    rejected: list[dict[str, str | None]] = []
    for outcome in clean_items(rows, settings, archive_settings):
        (docs if isinstance(outcome, Document) else rejected).append(outcome)
    dedupe = dedupe_table((Signature(*_signature_values(d)) for d in docs), settings)
    kept = dedupe.filter(pl.col("duplicate_of").is_null())
    duplicates = dedupe.filter(pl.col("duplicate_of").is_not_null())
    documents = (
        pl.DataFrame([_document_row(d) for d in docs], schema=SHARD_DOCUMENT_SCHEMA)
        .join(kept.select("doc_id", "cluster_id"), on="doc_id")
        .select(list(DOCUMENT_SCHEMA))
        .sort("doc_id")
    )
    rejected_frame = pl.concat(
        [
            pl.DataFrame(rejected, schema=REJECTED_SCHEMA),
            duplicates.select("doc_id", pl.lit("duplicate").alias("stage"), "reason", "duplicate_of"),
        ]
    ).sort("doc_id")
    write_parquet(documents, documents_out)
    write_parquet(rejected_frame, rejected_out)
    stages = rejected_frame.group_by("stage").len().sort("stage").rows()
    log.info("%d documents kept, %d rejected %s", documents.height, rejected_frame.height, dict(stages))
    return documents.height, rejected_frame.height
