"""A small synthetic corpus in the contract shape of documents.parquet and chunks.parquet.

Built here so the dataset and training tests do not depend on the corpus stage's code. Some documents are
near-duplicate scans of another (same cluster_id, mostly the same sentences): the leak the splits prevent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl

from archive_encoders.corpus.manifest import manifest_of_tables

TOPICS = {
    "river": "river boat water bank fish current shore bridge mill flood",
    "war": "army battle general soldier siege cannon regiment march flag victory",
    "church": "church priest prayer bell icon monastery saint candle choir feast",
    "farm": "peasant field harvest rye horse plough village barn cow winter",
    "court": "tsar court palace minister decree noble ball carriage envoy crown",
    "sea": "ship sail captain harbour storm island anchor wave sailor compass",
    "school": "teacher pupil lesson grammar book slate desk exam rector Latin",
    "trade": "merchant fair goods price silk ledger caravan market coin guild",
}
FILLER = ["the", "a", "of", "and", "in", "to", "with", "was", "were", "by", "on", "at", "from", "old", "new"]


def _sentence(rng: np.random.Generator, words: list[str]) -> str:
    n = int(rng.integers(6, 14))
    picked = [str(w) for w in rng.choice(words + FILLER, size=n)]
    return " ".join(picked).capitalize() + "."


def build(out_dir: Path, n_docs: int = 16, sentences_per_doc: int = 36, seed: int = 0) -> tuple[Path, Path]:
    """Write documents.parquet and chunks.parquet into out_dir; returns their paths."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    docs, chunks = [], []
    cluster_text: dict[str, list[str]] = {}
    for i in range(n_docs):
        doc_id = f"doc{i:02d}"
        # every fourth document is a second scan of the one before it: same cluster, most sentences shared
        if i % 4 == 3:
            cluster = docs[-1]["cluster_id"]
            sentences = [
                s if rng.random() < 0.8 else _sentence(rng, TOPICS[topics[(i - 1) % 8]].split())
                for s in cluster_text[cluster]
            ]
            title = docs[-1]["title"] + " (second edition)"
        else:
            cluster = f"c{i:02d}"
            words = TOPICS[topics[i % 8]].split()
            sentences = [_sentence(rng, words) for _ in range(sentences_per_doc)]
            title = f"On the {words[0]} and the {words[1]}, volume {i}"
        cluster_text[cluster] = sentences
        text = " ".join(sentences)
        docs.append(
            {
                "doc_id": doc_id,
                "title": title,
                "creator": "Anon",
                "date": "1890",
                "language": "en",
                "language_score": 0.99,
                "text": text,
                "text_original": text,
                "cluster_id": cluster,
            }
        )
        # chunks of 6 sentences overlapping by one, with exact character offsets
        starts = [0]
        for s in sentences[:-1]:
            starts.append(starts[-1] + len(s) + 1)
        for index, first in enumerate(range(0, len(sentences) - 1, 5)):
            last = min(first + 6, len(sentences))
            char_start = starts[first]
            char_end = starts[last - 1] + len(sentences[last - 1])
            piece = text[char_start:char_end]
            chunk_id = hashlib.sha1(f"{doc_id}:{char_start}:{char_end}".encode()).hexdigest()[:16]
            chunks.append(
                {
                    "chunk_id": chunk_id,
                    "doc_id": doc_id,
                    "chunk_index": index,
                    "text": piece,
                    "n_tokens": len(piece.split()),
                    "char_start": char_start,
                    "char_end": char_end,
                    "language": "en",
                }
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    documents_path, chunks_path = out_dir / "documents.parquet", out_dir / "chunks.parquet"
    pl.DataFrame(docs).write_parquet(documents_path)
    pl.DataFrame(chunks).write_parquet(chunks_path)
    manifest_of_tables(out_dir / "corpus.json", documents_path, chunks_path)
    return documents_path, chunks_path


SPLIT = {"val": 0.15, "test": 0.25}
HARD_NEGATIVES = {"num_negatives": 1, "range_min": 1, "range_max": 20, "relative_margin": 0.0}
SEED = 13


def tiny_spec(tiny_model: Path) -> dict:
    """The tiny model's config entry; short sequences keep the tests fast."""
    return {"name": "tiny", "path": str(tiny_model), "max_seq_length": 32}


def build_datasets(root: Path, tiny_model: Path) -> Path:
    """The corpus plus every dataset stage's output under root (built once per test session), each
    training dataset with its metadata JSON beside it, and the val/test query sets under root/querysets."""
    from archive_encoders.datasets import querysets, tsdae
    from archive_encoders.datasets import triplets as td
    from archive_encoders.datasets.splits import split_documents

    done = root / ".done"
    if done.exists():
        return root
    documents, chunks = build(root)
    splits = root / "splits.parquet"
    split_documents(documents, splits, split=SPLIT, seed=SEED)
    tsdae.tsdae_pairs(
        chunks, splits, root / "tsdae.parquet", 0.6, max_pairs=2000, seed=SEED, meta_out=root / "tsdae.json"
    )
    corpus = root / "corpus.json"
    settings = td.MiningSettings(
        tiny_spec(tiny_model), HARD_NEGATIVES, max_pairs=2000, seed=SEED, device="cpu", languages=["en"]
    )
    td.mine_triplets(
        corpus,
        splits,
        root / "triplets.parquet",
        settings,
        meta_out=root / "triplets.json",
        embeddings_out=root / "miner_embeddings.parquet",
    )
    querysets.query_sets(
        corpus,
        splits,
        root / "querysets",
        retrieval={"max_queries": 200, "distractors": 50},
        languages=["en"],
        seed=SEED,
    )
    done.touch()
    return root
