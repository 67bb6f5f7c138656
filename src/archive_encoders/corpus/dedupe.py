"""Duplicate scans: MinHash signatures of word shingles, near-duplicate pairs and clusters over the
whole corpus (rule dedupe_corpus), so one book's scans land in one split."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.config import with_defaults
from archive_encoders.io import write_parquet

log = logging.getLogger(__name__)


MAX_SHINGLES = 4096  # bottom-k sample of shingle hashes: bounded cost, consistent across scans
MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"  # datasketch's: hash values are uint32
SIGNATURE_SCHEMA = {
    "doc_id": pl.String,
    "chars": pl.Int64,
    "digest": pl.String,
    "minhash": pl.List(pl.UInt32),
}


# One row per document that passed cleaning: kept (cluster_id set) or dropped (duplicate_of, reason set).
DEDUPE_SCHEMA = {"doc_id": pl.String, "cluster_id": pl.String, "duplicate_of": pl.String, "reason": pl.String}


@dataclass(frozen=True)
class Signature:
    """What duplicate detection reads of a document (never its text)."""

    doc_id: str
    chars: int
    digest: str
    minhash: np.ndarray  # uint32, one value per permutation


_SPACE_BYTES = np.zeros(256, dtype=bool)


_SPACE_BYTES[list(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")] = True


_POSITIONS = 32  # a byte's weight depends on its position in the word (mod 32)
# (byte + 1) * weight[position]: one random odd 64-bit weight per position, derived from a fixed digest
# (not from a random generator, whose streams may change between numpy versions)
_WEIGHTS = np.array(
    [
        int.from_bytes(hashlib.blake2b(b"shingle weight %d" % i, digest_size=8).digest()) | 1
        for i in range(32)
    ],
    dtype=np.uint64,
)


_BYTE_WEIGHTS = (np.arange(1, 257, dtype=np.uint64)[None, :] * _WEIGHTS[:, None]).ravel()  # [pos << 8 | byte]
_HASH_BLOCK = 1 << 18  # bytes per numpy pass: keeps the temporary arrays in cache


def _mix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: every input bit reaches every output bit (wraps mod 2^64)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _word_hashes(data: np.ndarray) -> np.ndarray:
    """64-bit hashes of the words of `data` (uint8, whole words only), in order."""
    in_word = ~_SPACE_BYTES[data]
    edges = np.diff(in_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        return np.zeros(0, dtype=np.uint64)
    lengths = ends - starts
    letters = data[in_word]
    offsets = np.zeros(len(starts), dtype=np.int64)  # where each word starts among `letters`
    np.cumsum(lengths[:-1], out=offsets[1:])
    resets = np.zeros(len(letters), dtype=np.int32)
    resets[offsets[1:]] = lengths[:-1]
    index = np.arange(len(letters), dtype=np.int32) - np.cumsum(resets, dtype=np.int32)  # position in word
    index &= _POSITIONS - 1
    index <<= 8
    index |= letters
    sums = np.add.reduceat(_BYTE_WEIGHTS[index], offsets)
    return _mix(sums ^ lengths.astype(np.uint64))


def _next_space(data: np.ndarray, at: int) -> int:
    """The first whitespace byte at or after `at` (len(data) when none), looking a window at a time."""
    window = 4096
    while at < len(data):
        found = np.flatnonzero(_SPACE_BYTES[data[at : at + window]])
        if len(found):
            return at + int(found[0])
        at, window = at + window, window * 2
    return len(data)


def shingle_hashes(text: str) -> np.ndarray:
    """Sorted distinct 32-bit hashes of lowercase word bigrams (of the words, for a one-word text); for
    long texts the MAX_SHINGLES smallest (a bottom-k sample: near-identical texts keep near-identical
    samples)."""
    data = np.frombuffer(text.lower().encode("utf-8"), dtype=np.uint8)
    words = []
    start = 0
    while start < len(data):  # blocks end at a space, so no word is cut
        end = _next_space(data, min(len(data), start + _HASH_BLOCK))
        words.append(_word_hashes(data[start:end]))
        start = end
    ids = np.concatenate(words) if words else np.zeros(0, dtype=np.uint64)
    if len(ids) >= 2:
        ids = _mix(ids[:-1] * np.uint64(0x100000001B3) + ids[1:])
    hashes = (ids >> np.uint64(32)).astype(np.uint32)
    take = 2 * MAX_SHINGLES
    while take < len(hashes):  # the smallest values first: a partition, not a full sort
        smallest = np.unique(np.partition(hashes, take - 1)[:take])
        if len(smallest) >= MAX_SHINGLES:  # else repeated shingles crowd the smallest values: take more
            return smallest[:MAX_SHINGLES]
        take *= 4
    return np.unique(hashes)[:MAX_SHINGLES]


def _identity(value):
    return value


def minhash(text: str, num_perm: int) -> np.ndarray:
    """The MinHash hash values (uint32) of the text's shingles."""
    from datasketch import MinHash

    sketch = MinHash(num_perm=num_perm, seed=MINHASH_SEED, hashfunc=_identity, scheme=MINHASH_SCHEME)
    sketch.update_batch(shingle_hashes(text))
    return sketch.hashvalues.astype(np.uint32)


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _sketch(signature: Signature):
    from datasketch import LeanMinHash

    return LeanMinHash(seed=MINHASH_SEED, hashvalues=signature.minhash, scheme=MINHASH_SCHEME)


def find_duplicates(
    signatures: Iterable[Signature], threshold: float
) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """{dropped doc_id: (kept doc_id, reason)} and the MinHash (None when empty) of every kept document.

    Larger documents are kept first (a fuller scan beats a partial one), ties by doc_id."""
    from datasketch import MinHashLSH

    order = sorted(signatures, key=lambda s: (-s.chars, s.doc_id))
    num_perm = len(order[0].minhash) if order else 1
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    exact: dict[str, str] = {}
    sketches: dict[str, Any] = {}
    dropped: dict[str, tuple[str, str]] = {}
    for signature in order:
        doc_id = signature.doc_id
        if signature.digest in exact:
            dropped[doc_id] = (exact[signature.digest], "exact duplicate")
            continue
        sketch = _sketch(signature)
        if sketch.is_empty():  # no word pairs: two empty sketches would look identical
            exact[signature.digest] = doc_id
            sketches[doc_id] = None
            continue
        matches = sorted((-sketches[other].jaccard(sketch), other) for other in lsh.query(sketch))
        if matches and -matches[0][0] >= threshold:
            similarity, original = -matches[0][0], matches[0][1]
            dropped[doc_id] = (original, f"near duplicate (MinHash Jaccard {similarity:.2f})")
            continue
        exact[signature.digest] = doc_id
        sketches[doc_id] = sketch
        lsh.insert(doc_id, sketch)
    return dropped, sketches


def cluster_ids(sketches: dict[str, Any], threshold: float) -> dict[str, str]:
    """doc_id -> the smallest doc_id of its group; groups link documents with Jaccard >= threshold."""
    from datasketch import MinHashLSH

    parent = {doc_id: doc_id for doc_id in sketches}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    num_perm = next((len(s) for s in sketches.values() if s is not None), 1)
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


def dedupe_table(signatures: Iterable[Signature], settings: Mapping[str, Any]) -> pl.DataFrame:
    """DEDUPE_SCHEMA rows for every signature, sorted by doc_id."""
    dropped, sketches = find_duplicates(signatures, settings["dedupe_threshold"])
    clusters = cluster_ids(sketches, settings["cluster_threshold"])
    rows = [{"doc_id": d, "cluster_id": c, "duplicate_of": None, "reason": None} for d, c in clusters.items()]
    for doc_id, (original, reason) in dropped.items():
        log.info("rejected %s as duplicate of %s: %s", doc_id, original, reason)
        rows.append({"doc_id": doc_id, "cluster_id": None, "duplicate_of": original, "reason": reason})
    return pl.DataFrame(rows, schema=DEDUPE_SCHEMA).sort("doc_id")


def read_signatures(paths: Iterable[str | os.PathLike]) -> Iterator[Signature]:
    for path in paths:
        frame = pl.read_parquet(path)
        for doc_id, chars, digest, values in frame.iter_rows():
            yield Signature(doc_id, chars, digest, np.asarray(values, dtype=np.uint32))


def dedupe_corpus(
    signatures: Iterable[str | os.PathLike], dedupe_out: str | os.PathLike, settings: Mapping[str, Any] | None
) -> tuple[int, int]:
    """Every shard's signatures.parquet -> dedupe.parquet (DEDUPE_SCHEMA). Returns (kept, dropped)."""
    settings = with_defaults("clean", settings)
    table = dedupe_table(read_signatures(signatures), settings)
    write_parquet(table, dedupe_out)
    dropped = table["duplicate_of"].is_not_null().sum()
    clusters = table["cluster_id"].n_unique() - (1 if dropped else 0)
    log.info(
        "%d documents kept in %d clusters, %d dropped as duplicates",
        table.height - dropped,
        clusters,
        dropped,
    )
    return table.height - dropped, dropped
