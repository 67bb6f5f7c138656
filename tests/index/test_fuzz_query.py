"""Property tests of the search command's query handling: `normalise_query`, SearchIndex.search and the
/api/search parameters (FastAPI's TestClient) on random Unicode, surrogates (undecodable argv bytes),
over-long, empty and non-text queries. The property: a result, or a SearchError / a 400 with a message;
never another exception, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.index_helpers import build_topic_index
from support.serving_helpers import static_tiny

from archive_encoders.index.search import SearchError, SearchIndex, normalise_query
from archive_encoders.index.serve import MAX_K, MAX_QUERY_CHARS, create_app

WORDS = st.sampled_from(["river", "ice", "город", "история", "☃", "日本", "\u0301", "\x00", " ", "\n", "\t"])
QUERIES = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8"), max_size=60),
    st.text(st.characters(categories=["Cs", "Zs", "Cc", "Mn"]), max_size=20),  # surrogates included
    st.lists(WORDS, max_size=20).map(" ".join),
    st.builds(lambda w, n: w * n, WORDS, st.integers(0, 2 * MAX_QUERY_CHARS)),
)
FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(
    query=st.one_of(QUERIES, st.none(), st.integers(), st.binary(max_size=8)),
    limit=st.sampled_from([None, 20]),
)
def test_normalise_query_gives_clean_text_or_a_search_error(query, limit):
    try:
        text = normalise_query(query, limit)
    except SearchError as err:
        assert str(err)
        return
    assert isinstance(text, str) and text == " ".join(text.split()) and text
    text.encode("utf-8")  # no lone surrogate gets through
    assert limit is None or len(query) <= limit


@pytest.fixture(scope="module")
def index(tiny_model, tmp_path_factory):
    folder, _, _ = build_topic_index(
        tmp_path_factory.mktemp("fuzz-index"), "static", static_tiny(tiny_model), "hybrid-rrf"
    )
    return SearchIndex(folder, threads=1)


@pytest.fixture(scope="module")
def client(index):
    return TestClient(create_app(index), raise_server_exceptions=False)


@settings(max_examples=settings().max_examples * 2 // 3)
@given(query=QUERIES, k=st.integers(-3, 40), retriever=st.sampled_from([None, "dense", "bm25", "hybrid"]))
def test_search_answers_or_refuses_clearly(index, query, k, retriever):
    try:
        hits = index.search(query, k, retriever=retriever)
    except SearchError as err:
        assert str(err)
        return
    assert len(hits) <= max(1, min(k, index.count))
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


PARAMS = st.one_of(
    st.none(), st.text(st.characters(codec="utf-8"), max_size=12), st.integers(-5, 200).map(str)
)


@settings(max_examples=settings().max_examples * 2 // 3)
@given(
    q=st.one_of(st.none(), QUERIES.filter(lambda t: not any("\ud800" <= c <= "\udfff" for c in t))),
    k=PARAMS,
    retriever=st.one_of(PARAMS, st.sampled_from(["dense", "bm25", "hybrid"])),
)
def test_api_answers_or_gives_a_clear_400(client, q, k, retriever):
    params = {
        name: value for name, value in {"q": q, "k": k, "retriever": retriever}.items() if value is not None
    }
    response = client.get("/api/search", params=params)
    assert response.status_code in (200, 400), response.text
    body = response.json()
    if response.status_code == 400:
        assert body["error"] and "internal error" not in body["error"]
    else:
        assert 1 <= body["k"] <= MAX_K and len(body["hits"]) <= body["k"]
