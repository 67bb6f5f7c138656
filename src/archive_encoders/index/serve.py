"""`archive-encoders serve`: an index behind a search page and a JSON API (FastAPI on uvicorn), torch-free.

    GET /                                   the search page (one self-contained HTML page, no external assets)
    GET /api/search?q=...&k=10&retriever=   {"query", "retriever", "k", "took_ms", "warning", ..., "hits"}

A bad request (no query, a query over MAX_QUERY_CHARS, k outside 1..MAX_K, an unknown retriever, a query
the model cannot read) gets a 400 with {"error": message}; nothing a client sends reaches a traceback.
The page marks the words of each snippet whose stem is one of the query's (the BM25 analyzer's stems).
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from archive_encoders.index.search import RETRIEVERS, SearchError, SearchIndex, normalise_query

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_K = 100
DEFAULT_K = 10
ITEM_URL = "https://archive.org/details/{doc_id}"


class BadRequest(ValueError):
    """A request the API refuses, with the message the client sees."""


def parse_request(q: str | None, k: str | None, retriever: str | None, index: SearchIndex):
    """(query, k, retriever) checked, or BadRequest saying what is wrong."""
    try:
        query = normalise_query(q or "", MAX_QUERY_CHARS)
    except SearchError as err:
        raise BadRequest(f"{err} (parameter q)") from None
    try:
        top = DEFAULT_K if k in (None, "") else int(k)
    except ValueError:
        raise BadRequest(f"k={k!r}: give a whole number from 1 to {MAX_K}") from None
    if not 1 <= top <= MAX_K:
        raise BadRequest(f"k={top}: give a whole number from 1 to {MAX_K}")
    name = retriever or index.retriever
    if name not in RETRIEVERS:
        raise BadRequest(f"retriever {name!r}: expected one of {', '.join(RETRIEVERS)}")
    if name not in index.retrievers:
        raise BadRequest(f"retriever {name!r}: this index serves only {', '.join(index.retrievers)}")
    return query, top, name


def highlight(text: str, query_stems: set[str], analyzer) -> str:
    """`text` as HTML, each word whose stem is one of `query_stems` in <mark>; everything escaped."""
    if analyzer is None or not query_stems:
        return html.escape(text)
    out, last = [], 0
    for start, end, stem in analyzer.stem_spans(text):
        if stem in query_stems:
            out += [html.escape(text[last:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
            last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


class Searcher:
    """One SearchIndex shared by the server's worker threads (one search at a time: the encoder and the
    analyzer's cache are not made for concurrent use)."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self.lock = threading.Lock()
        self.analyzer = index.bm25.analyzer if index.bm25 is not None else None

    def search(self, query: str, k: int, retriever: str) -> dict[str, Any]:
        started = time.perf_counter()
        with self.lock:
            try:
                hits = self.index.search(query, k, retriever=retriever)
            except SearchError as err:
                raise BadRequest(str(err)) from None
            stems = set(self.analyzer.tokens(query)) if self.analyzer is not None else set()
        took = time.perf_counter() - started
        manifest = self.index.manifest
        return {
            "query": query,
            "retriever": retriever,
            "k": k,
            "took_ms": round(1000 * took, 2),
            "warning": self.index.script_warning(query),
            "model": manifest["model"],
            "method": manifest["method"],
            "variant": self.index.variant,
            "count": self.index.count,
            "hits": [
                {
                    **h.as_dict(),
                    "url": ITEM_URL.format(doc_id=h.doc_id),
                    "snippet_html": highlight(h.snippet, stems, self.analyzer),
                }
                for h in hits
            ],
        }


def create_app(index: SearchIndex) -> FastAPI:
    searcher = Searcher(index)
    app = FastAPI(title="archive-encoders search", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError):
        return JSONResponse(
            {"error": f"bad request: {err.errors()[0].get('msg', 'invalid')}"}, status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def crashed(_request: Request, err: Exception):
        log.exception("search failed")
        return JSONResponse(
            {"error": "internal error: the search failed (see the server's log)"}, status_code=500
        )

    @app.get("/api/search")
    def api_search(q: str | None = None, k: str | None = None, retriever: str | None = None):
        try:
            query, top, name = parse_request(q, k, retriever, index)
            return searcher.search(query, top, name)
        except BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def page(q: str | None = None, k: str | None = None, retriever: str | None = None):
        if q is None:
            return HTMLResponse(render_page(index, None, k, retriever, None, None))
        try:
            query, top, name = parse_request(q, k, retriever, index)
            result = searcher.search(query, top, name)
        except BadRequest as err:
            return HTMLResponse(render_page(index, q, k, retriever, None, str(err)), status_code=400)
        return HTMLResponse(render_page(index, q, k, retriever, result, None))

    return app


STYLE = """
body{font:16px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
form{display:flex;gap:.5rem;flex-wrap:wrap;margin-bottom:1rem}
input[type=search]{flex:1 1 20rem;font-size:1.05rem;padding:.4rem}
select,input[type=number],button{font-size:1rem;padding:.35rem}
ol{padding-left:1.5rem} li{margin-bottom:1rem} .meta{color:#555;font-size:.85rem}
.snippet{margin:.2rem 0} mark{background:#ffe27a;padding:0 .1rem}
.error{color:#a00;font-weight:600} .note{color:#835} footer{color:#777;font-size:.8rem;margin-top:2rem}
"""


def render_page(
    index: SearchIndex,
    q: str | None,
    k: str | None,
    retriever: str | None,
    result: dict[str, Any] | None,
    error: str | None,
) -> str:
    """The whole page: the form (refilled), then the error, or the ranked hits and the time taken."""
    e = html.escape
    chosen = retriever if retriever in index.retrievers else index.retriever
    options = "".join(
        f'<option value="{e(r)}"{" selected" if r == chosen else ""}>'
        f"{e(r)}{' (recommended)' if r == index.retriever else ''}</option>"
        for r in index.retrievers
    )
    try:
        k_value = int(k) if k else DEFAULT_K
    except ValueError:
        k_value = DEFAULT_K
    body = [
        '<form method="get" action="/" role="search">',
        f'<input type="search" name="q" value="{e(q or "")}" maxlength="{MAX_QUERY_CHARS}" '
        'placeholder="words to search for" aria-label="query" autofocus required>',
        f'<select name="retriever" aria-label="retriever">{options}</select>',
        f'<input type="number" name="k" value="{k_value}" min="1" max="{MAX_K}" aria-label="results">',
        '<button type="submit">Search</button>',
        "</form>",
    ]
    if error:
        body.append(f'<p class="error" role="alert">{e(error)}</p>')
    if result:
        hits = result["hits"]
        body.append(
            f'<p class="meta" id="summary">{len(hits)} passage{"s" if len(hits) != 1 else ""} by '
            f"{e(result['retriever'])} in {result['took_ms']:.1f} ms</p>"
        )
        if result["warning"]:
            body.append(f'<p class="note">{e(result["warning"])}</p>')
        items = [
            f'<li class="hit" data-chunk-id="{e(h["chunk_id"])}">'
            f'<a href="{e(h["url"])}">{e(h["title"] or h["doc_id"])}</a>'
            f'<p class="snippet">{h["snippet_html"]}</p>'
            f'<span class="meta">{e(h["doc_id"])} · {e(h["chunk_id"])} · score {h["score"]:.4f}</span></li>'
            for h in hits
        ]
        body.append(f'<ol id="hits">{"".join(items)}</ol>' if items else "<p>No passage matches.</p>")
    manifest = index.manifest
    about = f"{manifest['model']}/{manifest['method']}/{index.variant}, {index.count} passages"
    body.append(f"<footer>{e(about)}; recommended retriever: {e(index.retriever)}</footer>")
    title = f"{q} · archive search" if q else "archive search"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>Archive search</h1>{''.join(body)}</body></html>"
    )


def serve(index: SearchIndex, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(index), host=host, port=port, log_level="info")
