"""Batches for in-batch-negative losses in which no example is a false negative of another.

MultipleNegativesRankingLoss treats every other positive and negative of a batch as a negative of each
anchor. sentence-transformers' NO_DUPLICATES sampler keeps equal texts apart; on an OCR corpus that is not
enough: two pairs made from one passage (its inverse-cloze and its keyword query), from neighbouring,
overlapping chunks (a neighbour pair and the next chunk's pair), from two scans of one book (one
near-duplicate cluster), or a title query beside any passage of its book, are each other's positives.
`SourceBatchSampler` keeps all of these in different batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler


@dataclass(frozen=True)
class Source:
    """Where a training example's positive comes from."""

    cluster_id: str
    doc_id: str
    chunk_index: int | None  # None: a document-level query (title), relevant to every chunk of the doc


class _Batch:
    def __init__(self) -> None:
        self.rows: list[int] = []
        self.texts: set[str] = set()
        self.clusters: dict[
            str, tuple[str, set[int], bool]
        ] = {}  # cluster -> (doc, chunk indices, doc-level)

    def fits(self, texts: set[str], source: Source) -> bool:
        if not self.texts.isdisjoint(texts):
            return False
        held = self.clusters.get(source.cluster_id)
        if held is None:
            return True
        doc, indices, document_level = held
        if doc != source.doc_id or document_level or source.chunk_index is None:
            return False  # another scan of the book, or a query relevant to the whole book
        i = source.chunk_index
        return not {i - 1, i, i + 1} & indices  # neighbouring chunks overlap

    def add(self, row: int, texts: set[str], source: Source) -> None:
        self.rows.append(row)
        self.texts |= texts
        doc, indices, document_level = self.clusters.get(source.cluster_id, (source.doc_id, set(), False))
        if source.chunk_index is None:
            document_level = True
        else:
            indices.add(source.chunk_index)
        self.clusters[source.cluster_id] = (doc, indices, document_level)


class SourceBatchSampler(DefaultBatchSampler):
    """Shuffled batches (seeded per epoch) with no shared text and no two rows whose sources collide
    (_Batch.fits). A row that does not fit waits for a later batch of the same epoch; an epoch yields at
    most len(self) batches, so the learning-rate schedule holds, and rows left over then are drawn again
    in the next epoch's shuffle."""

    def __init__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        sources: Sequence[Source] = (),
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if len(sources) != len(dataset):
            raise ValueError(f"{len(sources)} sources for {len(dataset)} training rows")
        columns = [c for c in dataset.column_names if c not in (valid_label_columns or [])]
        self.texts = [set(row) for row in zip(*(dataset[c] for c in columns), strict=True)]
        self.sources = list(sources)

    def __len__(self) -> int:
        n = len(self.sources)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        if self.generator is not None and self.seed is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        remaining = torch.randperm(len(self.sources), generator=self.generator).tolist()
        for _ in range(len(self)):
            if not remaining:
                return
            batch, later = _Batch(), []
            for position, row in enumerate(remaining):
                if batch.fits(self.texts[row], self.sources[row]):
                    batch.add(row, self.texts[row], self.sources[row])
                    if len(batch.rows) == self.batch_size:
                        later.extend(remaining[position + 1 :])
                        break
                else:
                    later.append(row)
            if self.drop_last and len(batch.rows) < self.batch_size:
                return
            yield batch.rows
            remaining = later
