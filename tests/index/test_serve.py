"""`archive-encoders serve`: the JSON API and the search page (FastAPI's TestClient), then a real
browser against a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.index_helpers import build_topic_index
from support.serving_helpers import last_json, run_without_torch, static_tiny

from archive_encoders.datasets.text_analysis import Analyzer
from archive_encoders.index import cli
from archive_encoders.index.search import RETRIEVERS, SearchIndex
from archive_encoders.index.serve import create_app, highlight

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def index(tiny_model, tmp_path_factory):
    folder, _, rows = build_topic_index(
        tmp_path_factory.mktemp("serve-index"),
        "static",
        static_tiny(tiny_model),
        "hybrid-weighted",
        {"method": "weighted", "weight": 0.5},
    )
    return SearchIndex(folder, threads=1), rows


@pytest.fixture(scope="module")
def client(index):
    return TestClient(create_app(index[0]))


def test_api_answers_with_the_recommended_retriever_and_each_other(index, client):
    search_index, rows = index
    source = rows[9]
    query = " ".join(source[2].split()[:6])
    response = client.get("/api/search", params={"q": query, "k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["retriever"] == "hybrid" and body["k"] == 5 and body["took_ms"] >= 0
    assert [h["chunk_id"] for h in body["hits"]] == [h.chunk_id for h in search_index.search(query, 5)]
    hit = body["hits"][0]
    assert hit["doc_id"] == source[1] and hit["url"] == f"https://archive.org/details/{source[1]}"
    assert "<mark>" in hit["snippet_html"]
    for retriever in RETRIEVERS:
        got = client.get("/api/search", params={"q": query, "k": 3, "retriever": retriever}).json()
        expected = search_index.search(query, 3, retriever=retriever)
        assert got["retriever"] == retriever and [h["chunk_id"] for h in got["hits"]] == [
            h.chunk_id for h in expected
        ]
    assert cli.RETRIEVERS == RETRIEVERS


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "empty query"),
        ({"q": "   "}, "empty query"),
        ({"q": "river " * 100}, "query too long"),
        ({"q": "river", "k": "0"}, "k=0"),
        ({"q": "river", "k": "101"}, "k=101"),
        ({"q": "river", "k": "ten"}, "k='ten'"),
        ({"q": "river", "retriever": "sparse"}, "retriever 'sparse'"),
        ({"q": "☃☃ ☃", "retriever": "dense"}, "no word the model"),  # a SearchError
    ],
)
def test_bad_requests_get_a_clear_400(client, params, message):
    response = client.get("/api/search", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"] and "Traceback" not in response.text
    page = client.get("/", params=params)
    if params:  # the bare page is the empty form
        assert page.status_code == 400 and "Traceback" not in page.text
        assert 'class="error"' in page.text


def test_page_renders_hits_escaped_and_highlighted(index, client):
    _, rows = index
    page = client.get("/")
    assert page.status_code == 200 and '<input type="search" name="q"' in page.text
    assert "<script" not in page.text and "http://" not in page.text  # self-contained
    query = "<b>river</b> ice"
    page = client.get("/", params={"q": query, "retriever": "bm25"})
    assert page.status_code == 200
    assert "<b>river" not in page.text and "&lt;b&gt;river&lt;/b&gt; ice" in page.text
    assert "<mark>river</mark>" in page.text and "https://archive.org/details/doc0" in page.text
    assert 'id="summary"' in page.text and " ms</p>" in page.text


def test_highlight_marks_stems_and_escapes():
    analyzer = Analyzer(["en", "ru"])
    stems = set(analyzer.tokens("rivers города"))
    marked = highlight("The River <&> 'of' the Городом, rivers", stems, analyzer)
    assert (
        marked
        == "The <mark>River</mark> &lt;&amp;&gt; &#x27;of&#x27; the <mark>Городом</mark>, <mark>rivers</mark>"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(index):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(index[0]), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)")
def test_a_browser_finds_the_source_passage(index, live_server):
    from playwright.sync_api import sync_playwright

    _, rows = index
    source = rows[14]  # a passage of the Cyrillic topic
    query = " ".join(source[2].split()[:8])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(live_server + "/")
            page.fill("input[name=q]", query)
            page.select_option("select[name=retriever]", "hybrid")
            page.click("button[type=submit]")
            page.wait_for_selector("#hits li.hit")
            ids = page.eval_on_selector_all("#hits li.hit", "els => els.map(e => e.dataset.chunkId)")
            assert source[0] in ids
            assert page.locator("#hits mark").count() > 0
            assert " ms" in page.inner_text("#summary")
            assert page.get_attribute("#hits li.hit a", "href").startswith("https://archive.org/details/")
        finally:
            browser.close()


def test_commands_choose_the_retriever_and_serve_without_torch(index, tmp_path):
    search_index, rows = index
    query = " ".join(rows[3][2].split()[:5])
    folder = str(search_index.folder)
    module = ["-m", "archive_encoders.index.cli"]
    for retriever in RETRIEVERS:
        args = [*module, "search", "--index", folder, "--json", "-k", "4", "--retriever", retriever, query]
        result = run_without_torch("", tmp_path, *args)
        assert result.returncode == 0, result.stderr
        out = last_json(result.stdout)
        assert out["retriever"] == retriever
        assert [h["chunk_id"] for h in out["hits"]] == [
            h.chunk_id for h in search_index.search(query, 4, retriever=retriever)
        ]
    bad = run_without_torch("", tmp_path, *module, "search", "--index", folder, "--retriever", "x", query)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    missing = run_without_torch("", tmp_path, *module, "serve", "--index", str(tmp_path))
    assert (
        missing.returncode == 2
        and "not a search index" in missing.stderr
        and "Traceback" not in missing.stderr
    )
    app = run_without_torch(
        "from archive_encoders.index.search import SearchIndex\n"
        "from archive_encoders.index.serve import create_app\n"
        f"create_app(SearchIndex({folder!r}, threads=1)); print('served')",
        tmp_path,
    )
    assert app.returncode == 0 and "served" in app.stdout, app.stderr
