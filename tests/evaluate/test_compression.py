"""The compression table on synthetic embeddings: exact float32 row, dtypes and sizes, rescoring."""

from __future__ import annotations

import numpy as np
import pytest

from archive_encoders.evaluate.compression import compression_table, dequantize, hamming, rank, rescore
from archive_encoders.vectors import unit


def clustered(n_queries=40, per_query=3, dim=96, seed=0):
    """Each query has `per_query` passages near it (grade 2 for the nearest, 1 for the others)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(n_queries, dim)))
    queries = unit(centres + 0.3 * rng.normal(size=centres.shape) / np.sqrt(dim))
    corpus = unit(
        np.repeat(centres, per_query, axis=0)
        + 0.6 * rng.normal(size=(n_queries * per_query, dim)) / np.sqrt(dim)
    )
    # train: other passages of the same kind (int8 ranges and PCA are fitted on it)
    train = unit(unit(rng.normal(size=(200, dim))) + 0.6 * rng.normal(size=(200, dim)) / np.sqrt(dim))
    qids = [f"q{i}" for i in range(n_queries)]
    cids = [f"c{j}" for j in range(len(corpus))]
    qrels = {
        f"q{i}": {f"c{i * per_query + r}": (2 if r == 0 else 1) for r in range(per_query)}
        for i in range(n_queries)
    }
    return queries, corpus, train, qrels, qids, cids


def test_rows_sizes_and_float32_reference():
    queries, corpus, train, qrels, qids, cids = clustered()
    rows = {
        r["encoding"]: r
        for r in compression_table(queries, corpus, train, qrels, qids, cids, dims=(64, 32, 200))
    }
    assert list(rows) == [
        "float32",
        "int8",
        "int8 + rescore",
        "binary",
        "binary + rescore",
        "pca-64",
        "pca-32",
    ]  # 200 >= 96 dims: no PCA row
    assert rows["float32"]["ndcg@10_kept_pct"] == 100.0 and rows["float32"]["bytes_per_vector"] == 4 * 96
    assert rows["int8"]["bytes_per_vector"] == 96 and rows["int8"]["compression"] == 4.0
    assert rows["binary"]["bytes_per_vector"] == 12 and rows["binary + rescore"]["compression"] == 32.0
    assert rows["pca-32"]["bytes_per_vector"] == 128 and rows["pca-32"]["dimension"] == 32
    for row in rows.values():
        assert 0.0 <= row["ndcg@10"] <= 1.0
    # clustered data: every compressed form still finds the cluster (the figures on real models are in the
    # benchmark; here the ranking among a query's three relevant passages is noise)
    assert rows["int8 + rescore"]["ndcg@10_kept_pct"] >= 95
    assert rows["binary + rescore"]["ndcg@10_kept_pct"] >= 90


def test_matryoshka_truncates_and_unjudged_queries_are_skipped():
    queries, corpus, train, qrels, qids, cids = clustered(n_queries=10)
    qrels = {q: g for q, g in qrels.items() if q != "q3"}  # q3 is not judged: not scored
    rows = compression_table(queries, corpus, train, qrels, qids, cids, dims=(48,), matryoshka=True)
    assert [r["encoding"] for r in rows][-1] == "truncate-48"
    with pytest.raises(ValueError, match="no query has a relevant passage"):
        compression_table(queries, corpus, train, {"q0": {"c0": 0}}, qids, cids)
    with pytest.raises(ValueError, match="same number of rows"):
        compression_table(queries, corpus[:-1], train, qrels, qids, cids)


def test_helpers_by_hand():
    from sentence_transformers.util import quantize_embeddings

    ranges = np.array([[-1.0, 0.0], [1.0, 2.0]])
    values = quantize_embeddings(np.array([[-1.0, 2.0], [0.0, 1.0]]), "int8", ranges=ranges)
    assert values.dtype == np.int8 and values.shape == (2, 2)
    np.testing.assert_allclose(dequantize(values, ranges), [[-1.0, 2.0], [0.0, 1.0]], atol=2 / 255)
    bits = quantize_embeddings(np.array([[1.0, -1, 1, 1, -1, -1, -1, 1, 1], [-1.0] * 9]), "ubinary")
    assert bits.dtype == np.uint8 and bits.shape == (2, 2)  # 9 dims -> 2 bytes
    assert hamming(bits, bits).tolist() == [[0, 5], [5, 0]]
    assert rank(np.array([[0.1, 0.9, 0.9, 0.5]]), 3).tolist() == [[1, 2, 3]]  # ties by corpus order
    stored = np.array([[1.0, 0], [0, 1], [0.7, 0.7]])
    assert rescore(np.array([[0.0, 1.0]]), np.array([[0, 2, 1]]), stored, k=2).tolist() == [[1, 2]]
