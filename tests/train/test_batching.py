"""Batches for MNRL: no example is another's false negative (same text, neighbouring chunks of one book,
another scan of the book, a title query beside a passage of its book)."""

from __future__ import annotations

import itertools

import pytest
import torch
from datasets import Dataset

from archive_encoders.train.batching import Source, SourceBatchSampler, _Batch


def _conflict(a: tuple[set, Source], b: tuple[set, Source]) -> bool:
    (texts_a, sa), (texts_b, sb) = a, b
    if texts_a & texts_b:
        return True
    if sa.cluster_id != sb.cluster_id:
        return False
    if sa.doc_id != sb.doc_id or sa.chunk_index is None or sb.chunk_index is None:
        return True
    return abs(sa.chunk_index - sb.chunk_index) <= 1


def test_fits_follows_the_rules():
    batch = _Batch()
    batch.add(0, {"q0", "p0", "n0"}, Source("c1", "book", 4))
    assert not batch.fits({"p0"}, Source("c9", "other", 0))  # a shared text
    assert not batch.fits({"x"}, Source("c1", "book", 5))  # the next chunk overlaps
    assert not batch.fits({"x"}, Source("c1", "book", 4))  # another query of the same chunk
    assert not batch.fits({"x"}, Source("c1", "rescan", 9))  # another scan of the book
    assert not batch.fits({"x"}, Source("c1", "book", None))  # the book's title query
    assert batch.fits({"x"}, Source("c1", "book", 6))  # two chunks on: no overlap
    assert batch.fits({"x"}, Source("c2", "book2", 4))
    batch.add(1, {"t"}, Source("c3", "titled", None))
    assert not batch.fits({"y"}, Source("c3", "titled", 0))  # a passage of a book whose title is in


def _rows():
    rows = []
    for doc, cluster in (("a", "ca"), ("a2", "ca"), ("b", "cb"), ("c", "cc"), ("d", "cd"), ("e", "ce")):
        for index in range(6):
            for kind in ("ict", "keyword"):
                rows.append((f"{kind} {doc} {index}", f"passage {doc} {index}", f"neg {doc} {index} {kind}",
                             Source(cluster, doc, index)))  # fmt: skip
        rows.append((f"title {doc}", f"passage {doc} 0", f"neg title {doc}", Source(cluster, doc, None)))
    rows.append(("dup", "passage e 3", "neg dup", Source("cz", "z", 0)))  # shares a positive text with e#3
    return rows


@pytest.mark.parametrize("batch_size", [4, 8])
def test_batches_hold_no_false_negatives_and_each_row_once(batch_size):
    rows = _rows()
    dataset = Dataset.from_dict(
        {k: [r[i] for r in rows] for i, k in enumerate(("anchor", "positive", "negative"))}
    )
    sources = [r[3] for r in rows]
    sampler = SourceBatchSampler(
        dataset, batch_size, drop_last=False, generator=torch.Generator(), seed=3, sources=sources
    )
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert 0 < len(batches) <= len(sampler)
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat))  # a row at most once per epoch
        assert sum(len(b) == batch_size for b in batches) >= len(batches) // 2
        for batch in batches:
            assert len(batch) <= batch_size
            for i, j in itertools.combinations(batch, 2):
                assert not _conflict((set(rows[i][:3]), sources[i]), (set(rows[j][:3]), sources[j]))
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first  # seeded per epoch
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_sources_must_match_the_rows():
    dataset = Dataset.from_dict({"anchor": ["a", "b"], "positive": ["c", "d"]})
    with pytest.raises(ValueError, match="1 sources for 2 training rows"):
        SourceBatchSampler(dataset, 2, False, sources=[Source("c", "d", 0)])
