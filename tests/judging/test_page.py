"""The judging page's JSON API, through FastAPI's test client (the browser test drives the page itself)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support.judging_helpers import write_pool

from archive_encoders.judging.page import judging_app
from archive_encoders.judging.store import JudgmentStore


@pytest.fixture()
def client(tmp_path):
    pool, _ = write_pool(tmp_path)
    app = judging_app(tmp_path / "j.sqlite", pool, title="Team <judging> & co")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_the_page_is_self_contained_and_escaped(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "<title>Team &lt;judging&gt; &amp; co</title>" in page.text
    for external in ("http://", "https://", "src=", "<link"):
        assert external not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_next_hides_systems_and_shuffles_per_annotator(client):
    first = client.get("/api/next", params={"annotator": "ann"}).json()
    assert first["query_id"] == "q1" and first["query"] == "пожар в Иркутске 1879"
    ids = [p["corpus_id"] for p in first["passages"]]
    assert sorted(ids) == ["p1", "p2", "p3", "p4", "p5"]
    assert all(set(p) == {"corpus_id", "doc_id", "title", "text", "grade"} for p in first["passages"])
    assert "bm25" not in str(first) and "minilm" not in str(first)
    assert first["progress"] == {"judged": 0, "total": 12, "queries_done": 0, "queries": 3}
    again = client.get("/api/next", params={"annotator": "ann"}).json()
    assert [p["corpus_id"] for p in again["passages"]] == ids  # the same order every time for one annotator
    orders = {
        tuple(p["corpus_id"] for p in client.get("/api/next", params={"annotator": name}).json()["passages"])
        for name in ("ann", "bob", "cyd", "dan", "eve")
    }
    assert len(orders) > 1  # and not the same for everyone


def test_judging_a_query_moves_next_on_and_is_committed(client, tmp_path):
    for cid, grade in zip(["p1", "p2", "p3", "p4", "p5"], [2, 1, 0, 0, 1], strict=True):
        answer = client.post(
            "/api/judge", json={"query_id": "q1", "corpus_id": cid, "annotator": "ann", "grade": grade}
        )
        assert answer.status_code == 200, answer.text
    assert answer.json()["progress"] == {"judged": 5, "total": 12, "queries_done": 1, "queries": 3}
    assert JudgmentStore(tmp_path / "j.sqlite").grades("ann", "q1")[("q1", "p1")] == 2
    assert client.get("/api/next", params={"annotator": "ann"}).json()["query_id"] == "q2"
    assert client.get("/api/next", params={"annotator": "bob"}).json()["query_id"] == "q1"  # bob's own
    # `after` moves on from a query even if it still has unjudged passages, wrapping round
    assert client.get("/api/next", params={"annotator": "bob", "after": "q3"}).json()["query_id"] == "q1"
    assert client.get("/api/next", params={"annotator": "bob", "after": "q1"}).json()["query_id"] == "q2"
    grades = {
        p["corpus_id"]: p["grade"]
        for p in client.get("/api/query", params={"annotator": "ann", "query_id": "q1"}).json()["passages"]
    }
    assert grades == {"p1": 2, "p2": 1, "p3": 0, "p4": 0, "p5": 1}


def test_done_when_everything_is_judged(client):
    pooled = {"q1": ["p1", "p2", "p3", "p4", "p5"], "q2": ["p6", "p7", "p8"], "q3": ["p3", "p9", "p1", "p5"]}
    for qid, cids in pooled.items():
        for cid in cids:
            client.post(
                "/api/judge", json={"query_id": qid, "corpus_id": cid, "annotator": "ann", "grade": 0}
            )
    done = client.get("/api/next", params={"annotator": "ann"}).json()
    assert done == {"done": True, "progress": {"judged": 12, "total": 12, "queries_done": 3, "queries": 3}}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"query_id": "q1", "corpus_id": "p1", "annotator": "ann", "grade": 3}, 422, "grade: must be one of"),
        (
            {"query_id": "q1", "corpus_id": "p1", "annotator": "ann", "grade": "2"},
            422,
            "grade: must be one of",
        ),
        ({"query_id": "q1", "corpus_id": "p1", "annotator": " ", "grade": 1}, 422, "annotator: must be"),
        (
            {"query_id": "q1", "corpus_id": "p1", "annotator": "a" * 101, "grade": 1},
            422,
            "annotator: at most",
        ),
        ({"query_id": "q1", "corpus_id": "p1", "grade": 1}, 422, "annotator: missing"),
        ({"query_id": "q9", "corpus_id": "p1", "annotator": "ann", "grade": 1}, 404, "query_id: unknown"),
        (
            {"query_id": "q1", "corpus_id": "p9", "annotator": "ann", "grade": 1},
            404,
            "not in the pool of query",
        ),
        (
            {"query_id": 1, "corpus_id": "p1", "annotator": "ann", "grade": 1},
            422,
            "query_id: must be a string",
        ),
        ([1, 2], 400, "body: expected a JSON object"),
    ],
)
def test_bad_judgments_are_4xx_with_one_clear_message(client, body, status, message):
    answer = client.post("/api/judge", json=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert "Traceback" not in answer.text


def test_bad_reads_are_4xx_too(client):
    answer = client.post("/api/judge", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json() == {"error": "body: expected a JSON object"}
    answer = client.get("/api/next")
    assert answer.status_code == 422 and answer.json()["error"].startswith("annotator:")
    answer = client.get("/api/next", params={"annotator": "ann", "after": "q9"})
    assert answer.status_code == 404 and answer.json() == {"error": "after: unknown query 'q9'"}
    answer = client.get("/api/query", params={"annotator": "ann", "query_id": "q9"})
    assert answer.status_code == 404
    assert client.get("/nowhere").json() == {"error": "Not Found"}


def test_a_typed_query_is_stored_and_waits_for_the_next_pool(client, tmp_path):
    """A typed query is kept (source 'page') but not judged until every retriever has pooled it; typing a
    pooled query's text again only says it is pooled."""
    from archive_encoders.datasets.team_queries import query_id
    from archive_encoders.judging.store import typed_queries

    assert client.get("/api/typed").json() == {"typed": 0, "waiting": []}
    added = client.post("/api/queries", json={"text": "  пожар   в Москве 1812 "})
    assert added.status_code == 200
    assert added.json() == {
        "query_id": query_id("пожар в Москве 1812"),
        "pooled": False,
        "typed": 1,
        "waiting": ["пожар в Москве 1812"],
    }
    assert typed_queries(tmp_path / "j.sqlite") == ["пожар в Москве 1812"]
    # the pool's queries came from the file: the page does not pool on its own
    assert client.get("/api/next", params={"annotator": "a"}).json()["query_id"] == "q1"
    again = client.post("/api/queries", json={"text": "пожар в Москве 1812"})
    assert again.json()["typed"] == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 422, "text: missing"),
        ({"text": 5}, 422, "text: must be a string"),
        ({"text": "   "}, 422, "text: an empty query"),
        ({"text": "x" * 501}, 422, "text: 501 characters; a query has at most 500"),
    ],
)
def test_bad_typed_queries_are_4xx(client, body, status, message):
    answer = client.post("/api/queries", json=body)
    assert (answer.status_code, answer.json()) == (status, {"error": message})
    assert client.post("/api/queries", content=b"[1]").status_code == 400
