"""An index folder opened for search, torch-free (ONNX Runtime, OpenVINO or numpy, with tokenizers and
usearch). The folder, as index/build.py writes it:

    index.json        model, method, variant, the encoder's fingerprint, corpus, dimension, dtype, settings;
                      the retriever served by default (dense, bm25 or hybrid), the fusion {method, weight}
                      and the BM25 analyzer's languages
    vectors.usearch   the HNSW graph with the vectors (key = row of chunks.parquet)
    chunks.parquet    row, chunk_id, doc_id, title, snippet, in small row groups (index/metadata.py)
    encoder/          the query encoder (the variant's files: graph or static vectors, tokenizer, config)
    bm25/             BM25 over the same chunk texts (bm25s's files, the analyzer's languages)

Opening verifies the folder: index.json parsed with its keys and their types, the graph's dimension and
size against it, chunks.parquet's rows and chunk ids against the stored `chunk_ids_sha256` (hashed one row
group at a time); any damaged or disagreeing file is a `BrokenIndex` naming it. Nothing per row is held:
the graph is a memory map, BM25's score matrix too (its vocabulary is in RAM), and a hit's metadata is
read by row (its row group) when it is returned. The files stay open, so a long-lived object keeps the
vectors and the rows that belong to them even if the folder is rebuilt under it.

`SearchIndex` refuses an encoder that is not the one the index was built with. It answers with the
retriever the report recommends; a hybrid fuses the dense and BM25 runs (each TOP_K deep, as
compare_retrievers fuses the evaluation's runs) with `evaluate.fusion.fuse`, so a served ranking is the
evaluated one. An index built before bm25/ existed serves dense only.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archive_encoders.encoders.graph import CONFIG_FILE
from archive_encoders.encoders.static import unknown_token_id
from archive_encoders.index.errors import BrokenIndex, IndexMismatchError, SearchError, read_part
from archive_encoders.index.metadata import ChunkMetadata
from archive_encoders.index.metadata import sha256_of_ids as sha256_of_ids  # callers import it from here
from archive_encoders.index.storage import DTYPES, RESCORE_VECTORS, RescoreStore, search_graph
from archive_encoders.io import read_json
from archive_encoders.variants import variant as variant_entry

FORMAT = 1
MANIFEST = "index.json"
VECTORS = "vectors.usearch"
CHUNKS = "chunks.parquet"
ENCODER_DIR = "encoder"
BM25_DIR = "bm25"
K = 10
RETRIEVERS = ("dense", "bm25", "hybrid")
# the report's retriever names (evaluate/compare.py) -> what an index serves
SERVED_RETRIEVER = {"dense": "dense", "lexical": "bm25", "hybrid-rrf": "hybrid", "hybrid-weighted": "hybrid"}
# a hybrid without a val-chosen weight (the recommendation was dense or BM25) fuses by reciprocal rank
DEFAULT_FUSION = {"method": "rrf", "weight": None}
# torch is not a serving runtime: its ONNX FP32 export gives the same vectors (gated at min cosine 0.9999)
SERVED_AS = {"torch": "onnx-fp32"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", CONFIG_FILE)
# index.json's keys a search needs, with their types (build.py writes them all)
MANIFEST_KEYS = {
    "format": int,
    "model": str,
    "method": str,
    "variant": str,
    "encoder_fingerprint": str,
    "dimension": int,
    "count": int,
    "corpus": dict,
}


def normalise_query(query: object, max_chars: int | None = None) -> str:
    """The query with whitespace collapsed, or SearchError: not text, not valid Unicode (lone surrogates,
    as undecodable bytes in a command line arrive), empty, or over `max_chars` characters."""
    if not isinstance(query, str):
        raise SearchError(f"the query must be text, not {type(query).__name__}")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = query[err.start : err.end]
        try:  # undecodable argv bytes arrive as surrogate escapes: show the bytes
            shown = f"bytes {bad.encode('utf-8', 'surrogateescape')!r}"
        except UnicodeEncodeError:  # any other lone surrogate
            shown = f"character {bad.encode('utf-8', 'backslashreplace').decode()}"
        raise SearchError(f"the query is not valid UTF-8 text ({shown}): give it in UTF-8") from None
    if max_chars is not None and len(query) > max_chars:
        raise SearchError(f"query too long: {len(query)} characters, at most {max_chars}")
    text = " ".join(query.split())
    if not text:
        raise SearchError("empty query: give some words to search for")
    return text


def served_variant(variant: str) -> str:
    return SERVED_AS.get(variant, variant)


def encoder_files(variant: str, folder: str | os.PathLike) -> list[Path]:
    """The files a torch-free process needs to run `variant` from its artefact folder."""
    folder = Path(folder)
    entry = variant_entry(variant)
    if entry.runtime == "model2vec":
        names = ["model.safetensors", "config.json", "tokenizer.json", CONFIG_FILE]
    else:
        config = read_json(folder / CONFIG_FILE)
        model_file = config["files"][entry.file_key]
        names = [model_file, *TOKENIZER_FILES]
        if model_file.endswith(".xml"):
            names.append(model_file[: -len(".xml")] + ".bin")
        if (folder / (model_file + ".data")).is_file():
            names.append(model_file + ".data")
    return [folder / n for n in names if (folder / n).is_file()]


def fingerprint(variant: str, folder: str | os.PathLike) -> str:
    """sha256 over the encoder's files (names and bytes): two encoders agree only if they are the same."""
    digest = hashlib.sha256(variant.encode())
    for path in sorted(encoder_files(variant, folder), key=lambda p: p.name):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def script_of(char: str) -> str | None:
    """The writing system of a letter (Latin, Cyrillic, Greek, CJK, ...), None for anything else."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else None


# a word-boundary piece alone (SentencePiece's, byte-level BPE's) carries no word
BOUNDARY_PIECES = frozenset({"▁", "Ġ"})


def unknown_only(tokenizer, text: str, unk: int | None) -> bool:
    """True when `text` has no token but the unknown token `unk` and bare word boundaries."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    return all(i == unk or t in BOUNDARY_PIECES for i, t in zip(encoding.ids, encoding.tokens, strict=True))


def open_encoder(variant: str, folder: str | os.PathLike, threads: int | None = None):
    """The torch-free encoder of `variant` from a folder of its files."""
    entry = variant_entry(variant)
    if entry.runtime == "torch":
        raise SearchError(f"variant {variant!r} needs torch; an index serves {SERVED_AS['torch']} instead")
    from archive_encoders.encoders.loader import load_encoder

    return load_encoder(variant, folder, {}, threads)


@dataclass
class Hit:
    rank: int
    score: float
    chunk_id: str
    doc_id: str
    title: str
    snippet: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SearchIndex:
    """An index folder opened for search: the graph and BM25 memory-mapped, the metadata read by row, the
    encoder loaded once.

    encoder_dir: a query encoder other than the bundled one (e.g. the artefact folder); it must be the
    very encoder the index was built with, or IndexMismatchError says which differs.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        encoder_dir: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.manifest = self.read_manifest()
        self.variant = self.manifest["variant"]
        self.count = self.manifest["count"]
        encoder_dir = Path(encoder_dir) if encoder_dir is not None else self.folder / ENCODER_DIR
        if encoder_dir != self.folder / ENCODER_DIR:
            self.check_encoder(encoder_dir)
        self.encoder = read_part(encoder_dir, lambda: open_encoder(self.variant, encoder_dir, threads))
        if int(self.encoder.dimension) != self.manifest["dimension"]:
            raise IndexMismatchError(
                f"{encoder_dir}: encoder gives {self.encoder.dimension}-d vectors, the index holds "
                f"{self.manifest['dimension']}-d"
            )
        # found once: for a Unigram vocabulary (XLM-R's 250 k) it means serialising the whole tokenizer
        self.unknown_id = unknown_token_id(self.encoder.tokenizer)
        self.graph = self.open_graph()
        # usearch's file keeps connectivity but not expansion_search (a restored graph searches at 64)
        settings = self.manifest.get("settings")
        if isinstance(settings, dict) and isinstance(settings.get("expansion_search"), int):
            self.graph.expansion_search = int(settings["expansion_search"])
        self.dtype = self.manifest.get("dtype", "f32")
        self.rescore_store = self.open_rescore_store() if self.dtype == "b1" else None
        # opened now, not on first use: these rows belong to the vectors just opened
        self.metadata = ChunkMetadata(
            self.folder / CHUNKS, self.count, self.manifest["corpus"]["chunk_ids_sha256"], MANIFEST
        )
        self.retriever = self.manifest.get("retriever") or "dense"
        self.fusion = self.manifest.get("fusion") or DEFAULT_FUSION
        self.bm25 = None
        if (self.folder / BM25_DIR).is_dir():
            from archive_encoders.evaluate.lexical import BM25Index

            self.bm25 = read_part(self.folder / BM25_DIR, lambda: BM25Index.load(self.folder / BM25_DIR))
            if self.bm25.size != self.count:
                raise BrokenIndex(f"{self.folder / BM25_DIR}: {self.bm25.size} passages, not {self.count}")
        elif self.retriever != "dense":
            raise BrokenIndex(f"{self.folder}: serves {self.retriever} but has no {BM25_DIR}/; rebuild it")

    def read_manifest(self) -> dict:
        """index.json, parsed and checked: every key a search needs, of the right type and range."""
        path = self.folder / MANIFEST
        if not path.is_file():
            raise SearchError(
                f"{self.folder}: not a search index (no {MANIFEST}); build it with the `index` target"
            )
        try:
            manifest = read_json(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BrokenIndex(f"{path}: not readable JSON ({err}); rebuild the index") from None
        if not isinstance(manifest, dict):
            raise BrokenIndex(f"{path}: not a JSON object; rebuild the index")
        if manifest.get("format") != FORMAT:
            raise BrokenIndex(f"{path}: index format {manifest.get('format')!r}, expected {FORMAT}")
        for key, kind in MANIFEST_KEYS.items():
            value = manifest.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                got = "missing" if key not in manifest else f"{type(value).__name__} {value!r}"
                raise BrokenIndex(f"{path}: key {key!r} is {got}, expected {kind.__name__}; rebuild it")
        if manifest["dimension"] < 1 or manifest["count"] < 1:
            raise BrokenIndex(f"{path}: dimension and count must be positive; rebuild the index")
        if not isinstance(manifest["corpus"].get("chunk_ids_sha256"), str):
            raise BrokenIndex(f"{path}: key 'corpus.chunk_ids_sha256' is missing; rebuild the index")
        if manifest.get("dtype", "f32") not in DTYPES:
            raise BrokenIndex(f"{path}: dtype {manifest.get('dtype')!r}, expected one of {', '.join(DTYPES)}")
        retriever = manifest.get("retriever")
        if retriever is not None and retriever not in RETRIEVERS:
            raise BrokenIndex(f"{path}: retriever {retriever!r}, expected one of {', '.join(RETRIEVERS)}")
        fusion = manifest.get("fusion")
        if fusion is not None and not (isinstance(fusion, dict) and isinstance(fusion.get("method"), str)):
            raise BrokenIndex(f"{path}: fusion {fusion!r} is not {{method, weight}}; rebuild the index")
        return manifest

    def open_graph(self):
        """The HNSW graph, memory-mapped, checked against index.json's dimension and count."""
        from usearch.index import Index

        path = self.folder / VECTORS
        if not path.is_file():
            raise BrokenIndex(f"{path}: missing; rebuild the index")
        graph = read_part(path, lambda: Index.restore(str(path), view=True))
        if graph is None:
            raise BrokenIndex(f"{path}: not a usearch index; rebuild the index")
        if int(graph.ndim) != self.manifest["dimension"]:
            raise BrokenIndex(
                f"{path}: {graph.ndim}-d vectors, but {MANIFEST} says {self.manifest['dimension']}-d; "
                "rebuild the index"
            )
        if int(graph.size) != self.count:
            raise BrokenIndex(f"{path}: {graph.size} vectors, but {MANIFEST} says {self.count}; rebuild it")
        return graph

    def check_encoder(self, encoder_dir: Path) -> None:
        config_path = encoder_dir / CONFIG_FILE
        if not config_path.is_file():
            raise IndexMismatchError(f"{encoder_dir}: not an encoder folder (no {CONFIG_FILE})")
        config = read_json(config_path)
        theirs = (config.get("model"), config.get("method"))
        ours = (self.manifest["model"], self.manifest["method"])
        built = f"{ours[0]}/{ours[1]}/{self.variant}"
        if theirs != ours:
            raise IndexMismatchError(
                f"encoder {encoder_dir} is {theirs[0]}/{theirs[1]}, but the index {self.folder} was built "
                f"with {built}: its vectors live in another space; rebuild the index or use its own encoder"
            )
        if fingerprint(self.variant, encoder_dir) != self.manifest["encoder_fingerprint"]:
            raise IndexMismatchError(
                f"encoder {encoder_dir} ({self.variant}) is not the one the index {self.folder} was built "
                f"with ({built}: different weights, e.g. retrained or re-exported); rebuild the index or use "
                "its own encoder"
            )

    @property
    def retrievers(self) -> tuple[str, ...]:
        """What this index can serve."""
        return RETRIEVERS if self.bm25 is not None else ("dense",)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's embedding; a clear error for an empty query or one the model cannot read."""
        text = normalise_query(query)
        if unknown_only(self.encoder.tokenizer, text, self.unknown_id):
            raise SearchError(
                f"the query {text!r} has no word the model ({self.manifest['model']}) knows: every token is "
                f"unknown to its vocabulary. Scripts in this index: {self.scripts_line()}"
            )
        return self.encoder.encode_queries([text])

    def scripts_line(self) -> str:
        shares = self.manifest.get("scripts") or {}
        return ", ".join(f"{s} {100 * v:.0f} %" for s, v in list(shares.items())[:4]) or "unknown"

    def script_warning(self, query: str) -> str | None:
        """A note when the query's letters are in a script the corpus (almost) never uses."""
        shares = self.manifest.get("scripts") or {}
        letters = Counter(s for s in map(script_of, query) if s)
        if not letters or not shares:
            return None
        main = letters.most_common(1)[0][0]
        if shares.get(main, 0.0) >= 0.01:
            return None
        return (
            f"the query is written in {main} script, which this index's texts hardly use "
            f"({self.scripts_line()}): the results are likely unrelated"
        )

    def search(self, query: str, k: int = K, retriever: str | None = None) -> list[Hit]:
        """The top k passages by `retriever` (dense, bm25 or hybrid; default: the recommended one). BM25
        returns only passages holding a query word, so it (and a hybrid) may give fewer than k."""
        retriever = retriever or self.retriever
        if retriever not in RETRIEVERS:
            raise SearchError(f"retriever {retriever!r}: expected one of {', '.join(RETRIEVERS)}")
        if retriever not in self.retrievers:
            raise SearchError(f"{self.folder}: no BM25 part (built before it existed); rebuild the index")
        normalise_query(query)
        k = max(1, min(int(k), self.count))
        if retriever == "dense":
            ranked = self.dense_run(query, k)
        elif retriever == "bm25":
            ranked = self.bm25_run(query, k)
        else:
            ranked = self.hybrid_run(query, k)
        return self.hits(ranked)

    def dense_run(self, query: str, k: int) -> list[tuple[int, float]]:
        """(row, cosine) of the k nearest passages, best first (a b1 graph's candidates rescored)."""
        return self.nearest(self.query_vector(query)[0], k)

    def nearest(self, vector: np.ndarray, k: int, exact: bool = False) -> list[tuple[int, float]]:
        """(row, cosine) of the k stored vectors nearest to a query vector: the graph walked, or with
        `exact` every vector compared (what the walk's recall is measured against)."""
        keys, scores = search_graph(self.graph, vector, k, self.dtype, self.rescore_store, exact=exact)
        return [(int(key), float(score)) for key, score in zip(keys, scores, strict=True)]

    def open_rescore_store(self):
        """A b1 index's int8 copies of its vectors (memory-mapped), one per row."""
        store = read_part(self.folder / RESCORE_VECTORS, lambda: RescoreStore(self.folder))
        if store.count != self.count or store.dimension != self.manifest["dimension"]:
            raise BrokenIndex(
                f"{self.folder / RESCORE_VECTORS}: {store.count} x {store.dimension}, but {MANIFEST} says "
                f"{self.count} x {self.manifest['dimension']}; rebuild the index"
            )
        return store

    def bm25_run(self, query: str, k: int) -> list[tuple[int, float]]:
        """(row, BM25 score) of the k best passages with a query word, best first (the evaluation's
        BM25Index.run, by row)."""
        return self.bm25.top_rows(normalise_query(query), k)

    def hybrid_run(self, query: str, k: int) -> list[tuple[int, float]]:
        """(row, fused score) of the k best passages: the dense and BM25 runs, TOP_K deep each, fused as
        compare_retrievers fuses them. That fusion ranks chunk ids, equal scores in chunk-id order; fused
        here by row, equal scores that reach the top k are put back in chunk-id order (reading only their
        ids), so the served ranking is the evaluated one."""
        from archive_encoders.evaluate.fusion import fuse
        from archive_encoders.evaluate.ranking import TOP_K

        depth = min(TOP_K, self.count)
        dense, lexical = self.dense_run(query, depth), self.bm25_run(query, depth)
        method, weight = self.fusion["method"], self.fusion.get("weight")
        fused = fuse({"q": dense}, {"q": lexical}, method, weight)["q"]
        cut = min(k, len(fused))
        if not cut:
            return []
        end = cut  # past the last row that scores as the k-th
        while end < len(fused) and fused[end][1] == fused[cut - 1][1]:
            end += 1
        candidates = list(dict.fromkeys(row for row, _ in dense + lexical))
        if end == len(fused) < len(candidates):
            # fuse kept TOP_K of more rows, cutting at the k-th score in row order: rows of that score it
            # dropped may come first in chunk-id order, so fuse by chunk id (<= 2 * TOP_K ids read)
            ids = self.chunk_ids(candidates)
            by_id = fuse(
                {"q": [(ids[row], score) for row, score in dense]},
                {"q": [(ids[row], score) for row, score in lexical]},
                method,
                weight,
            )["q"]
            row_of = {cid: row for row, cid in ids.items()}
            return [(row_of[cid], score) for cid, score in by_id[:cut]]
        head = fused[:end]
        shared = Counter(score for _, score in head)
        ids = self.chunk_ids([row for row, score in head if shared[score] > 1])  # only tied rows need it
        return sorted(head, key=lambda hit: (-hit[1], ids.get(hit[0], "")))[:cut]

    def chunk_ids(self, rows: list[int]) -> dict[int, str]:
        """row -> chunk id of these rows (through the metadata's LRU, which hits() then reads again)."""
        return {row: meta["chunk_id"] for row, meta in zip(rows, self.metadata.rows(rows), strict=True)}

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        """The Hits of (row, score) pairs, best first: only these rows' metadata is read."""
        metas = self.metadata.rows([row for row, _ in ranked])
        return [
            Hit(rank=rank, score=round(float(score), 4), **meta)
            for rank, ((_, score), meta) in enumerate(zip(ranked, metas, strict=True), start=1)
        ]
