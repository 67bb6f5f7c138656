"""The index serves the report's verdict: BM25 beside the vectors, and a hybrid fused exactly as the
evaluation fused it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from support.index_helpers import build_topic_index
from support.serving_helpers import static_tiny

from archive_encoders.datasets.text_analysis import Analyzer
from archive_encoders.evaluate import fusion
from archive_encoders.evaluate.lexical import BM25Index
from archive_encoders.evaluate.ranking import TOP_K
from archive_encoders.index.search import SearchError, SearchIndex
from archive_encoders.io import read_json, write_json

WEIGHT = 0.6
QUERIES = ("river ice boat", "город история", "apple garden bee", "letter river garden", "winter война")


@pytest.fixture(scope="module")
def hybrid_index(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hybrid-index")
    return build_topic_index(
        folder, "static", static_tiny(tiny_model), "hybrid-weighted", {"method": "weighted", "weight": WEIGHT}
    )


def exact_dense_run(index: SearchIndex, rows, query: str) -> list[tuple[str, float]]:
    """The evaluation's dense run: exact cosine top-k over every passage, ties by corpus position."""
    corpus = index.encoder.encode_passages([r[2] for r in rows])
    cosines = corpus @ index.encoder.encode_queries([query])[0]
    order = np.lexsort((np.arange(len(rows)), -cosines))[:TOP_K]
    return [(rows[j][0], float(cosines[j])) for j in order]


def test_index_records_the_verdict(hybrid_index):
    folder, report, rows = hybrid_index
    manifest = read_json(folder / "index.json")
    assert manifest["recommended_retriever"] == "hybrid-weighted" and manifest["retriever"] == "hybrid"
    assert manifest["fusion"] == {"method": "weighted", "weight": WEIGHT}
    assert manifest["bm25"]["languages"] == ["en", "ru"] and (folder / "bm25" / "analyzer.json").is_file()
    assert report["retriever"] == "hybrid" and report["measured"]["bm25_disk_mb"] > 0


def test_hybrid_search_equals_the_evaluations_fused_run(hybrid_index):
    folder, _, rows = hybrid_index
    index = SearchIndex(folder, threads=1)
    bm25 = BM25Index([r[2] for r in rows], Analyzer(["en", "ru"]))
    ids = [r[0] for r in rows]
    for query in QUERIES:
        dense_run = {query: exact_dense_run(index, rows, query)}
        bm25_run = bm25.run([query], [query], ids)
        fused = fusion.fuse(dense_run, bm25_run, "weighted", WEIGHT)[query]
        for k in (3, 10, len(rows)):
            hits = index.search(query, k, retriever="hybrid")
            assert [h.chunk_id for h in hits] == [d for d, _ in fused[:k]]
            assert [h.score for h in hits] == pytest.approx([s for _, s in fused[:k]], abs=1e-4)
        assert [h.chunk_id for h in index.search(query, 5)] == [d for d, _ in fused[:5]]  # the default
        lexical = index.search(query, len(rows), retriever="bm25")
        assert [h.chunk_id for h in lexical] == [d for d, _ in bm25_run[query]]
        dense = index.search(query, 5, retriever="dense")
        assert [h.chunk_id for h in dense] == [d for d, _ in dense_run[query][:5]]


def test_bm25_leaves_out_passages_without_a_query_word(hybrid_index):
    folder, _, rows = hybrid_index
    index = SearchIndex(folder, threads=1)
    texts = {r[0]: r[2] for r in rows}
    hits = index.search("river", 20, retriever="bm25")
    assert {h.chunk_id for h in hits} == {cid for cid, text in texts.items() if "river" in text.split()}
    assert index.search("зонтик", 5, retriever="bm25") == []
    with pytest.raises(SearchError, match="retriever 'sparse'"):
        index.search("river", 5, retriever="sparse")


def test_rrf_recommendation_and_old_dense_only_index(tiny_model, tmp_path):
    folder, _, rows = build_topic_index(tmp_path, "static", static_tiny(tiny_model), "hybrid-rrf")
    index = SearchIndex(folder, threads=1)
    assert (index.retriever, index.fusion) == ("hybrid", {"method": "rrf", "weight": None})
    query = "letter archive page"
    bm25 = BM25Index([r[2] for r in rows], Analyzer(["en", "ru"]))
    fused = fusion.fuse(
        {query: exact_dense_run(index, rows, query)}, bm25.run([query], [query], [r[0] for r in rows]), "rrf"
    )[query]
    assert [h.chunk_id for h in index.search(query, 7)] == [d for d, _ in fused[:7]]
    shutil.rmtree(folder / "bm25")  # an index built before BM25 travelled with it
    manifest = read_json(folder / "index.json")
    write_json(folder / "index.json", {**manifest, "retriever": "dense"})
    old = SearchIndex(folder, threads=1)
    assert old.retrievers == ("dense",) and len(old.search(query, 3)) == 3
    with pytest.raises(SearchError, match="no BM25 part"):
        old.search(query, 3, retriever="hybrid")
