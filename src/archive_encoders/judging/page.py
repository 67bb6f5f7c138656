"""The judging page: one self-contained HTML page (no external assets) and its JSON API, as a FastAPI app.

    GET  /                          the page
    GET  /api/next?annotator=NAME   the next query with passages NAME has not graded (after=QUERY_ID to
                                    move on from one), its pooled passages in a seeded random order per
                                    (query, annotator), system names hidden, NAME's grades so far, progress
    GET  /api/query?annotator=NAME&query_id=ID   one query, the same shape
    POST /api/judge {query_id, corpus_id, annotator, grade}   committed before the answer
    GET  /api/typed                 the queries typed on this page, and those still waiting for a pool
    POST /api/queries {text}        a query typed on the page: stored, and pooled by every retriever on
                                    the next `judging` run (judging.db), never by one system alone

Bad requests get a 4xx with {"error": "<one line>"}, never a traceback. The page puts every text in with
`textContent` (nothing from the pool or the database is ever parsed as HTML), and the server escapes the
one thing it writes into the page itself (the title).

No `from __future__ import annotations` here: FastAPI reads the handlers' annotations at run time, and
`Request` is imported inside `judging_app` (fastapi loads only when a page is served).
"""

import hashlib
import html
import logging
import os
import random
from pathlib import Path
from typing import Any

import polars as pl

from archive_encoders.datasets.team_queries import check_query, query_id
from archive_encoders.judging.pool import Passage, pool_queries, pooled_passages, read_pool
from archive_encoders.judging.store import JudgmentStore, check_annotator, check_grade

log = logging.getLogger(__name__)
MAX_NAME = 100


def passage_order(passages: list[Passage], query_id: str, annotator: str) -> list[Passage]:
    """The passages shuffled by a seed drawn from (query, annotator): the same for one annotator every
    time, different between annotators (no order effect shared by the team, no hint of which system)."""
    digest = hashlib.sha256(f"{query_id}\x00{annotator}".encode()).digest()
    shuffled = sorted(passages, key=lambda p: p.corpus_id)
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(shuffled)
    return shuffled


class Judging:
    """The pool and the store behind the page (plain Python, tested without HTTP)."""

    def __init__(self, db: str | os.PathLike | JudgmentStore, pool: str | os.PathLike | pl.DataFrame):
        self.pool = pool if isinstance(pool, pl.DataFrame) else read_pool(pool)
        self.store = db if isinstance(db, JudgmentStore) else JudgmentStore(db)
        self.queries = pool_queries(self.pool)
        self.passages = pooled_passages(self.pool)
        self.ids = {qid: {p.corpus_id for p in ps} for qid, ps in self.passages.items()}
        self.total = sum(len(ps) for ps in self.passages.values())
        self.store.add_queries(self.queries.items(), source="file")

    def progress(self, annotator: str) -> dict[str, int]:
        grades = self.store.grades(annotator)
        judged = sum(1 for (q, c) in grades if c in self.ids.get(q, ()))
        done = sum(1 for q, ids in self.ids.items() if all((q, c) in grades for c in ids))
        return {"judged": judged, "total": self.total, "queries_done": done, "queries": len(self.ids)}

    def query(self, annotator: str, query_id: str) -> dict[str, Any]:
        annotator = check_annotator(annotator)
        if query_id not in self.passages:
            raise LookupError(f"query_id: unknown query {query_id!r}")
        grades = self.store.grades(annotator, query_id)
        passages = [
            {
                "corpus_id": p.corpus_id,
                "doc_id": p.doc_id,
                "title": p.title,
                "text": p.text,
                "grade": grades.get((query_id, p.corpus_id)),
            }
            for p in passage_order(self.passages[query_id], query_id, annotator)
        ]
        return {
            "done": False,
            "query_id": query_id,
            "query": self.queries[query_id],
            "passages": passages,
            "progress": self.progress(annotator),
        }

    def next_query(self, annotator: str, after: str | None = None) -> dict[str, Any]:
        """The first query after `after` (wrapping round) with a passage `annotator` has not graded."""
        annotator = check_annotator(annotator)
        order = list(self.passages)
        if after is not None and after not in self.passages:
            raise LookupError(f"after: unknown query {after!r}")
        start = order.index(after) + 1 if after is not None else 0
        grades = self.store.grades(annotator)
        for qid in order[start:] + order[:start]:
            if any((qid, c) not in grades for c in self.ids[qid]):
                return self.query(annotator, qid)
        return {"done": True, "progress": self.progress(annotator)}

    def typed(self) -> dict[str, Any]:
        """The queries typed on the page; `waiting` are those the pool does not hold yet."""
        typed = self.store.queries().filter(pl.col("source") == "page")
        waiting = [text for qid, text in typed.select("query_id", "text").rows() if qid not in self.passages]
        return {"typed": typed.height, "waiting": waiting}

    def add_query(self, text: Any) -> dict[str, Any]:
        """Store a query typed on the page (source 'page'). It is judged once the next `judging` run has
        pooled it from every retriever: a pool drawn from one system would favour that system."""
        if not isinstance(text, str):
            raise ValueError("text: must be a string")
        text = check_query(text, "text")
        qid = query_id(text)
        self.store.add_queries([(qid, text)], source="page")
        return {"query_id": qid, "pooled": qid in self.passages, **self.typed()}

    def judge(self, query_id: str, corpus_id: str, annotator: str, grade: Any) -> dict[str, Any]:
        grade, annotator = check_grade(grade), check_annotator(annotator)
        if len(annotator) > MAX_NAME:
            raise ValueError(f"annotator: at most {MAX_NAME} characters")
        if query_id not in self.ids:
            raise LookupError(f"query_id: unknown query {query_id!r}")
        if corpus_id not in self.ids[query_id]:
            raise LookupError(f"corpus_id: passage {corpus_id!r} is not in the pool of query {query_id!r}")
        self.store.judge(query_id, corpus_id, annotator, grade)
        return {"ok": True, "progress": self.progress(annotator)}


def judging_app(
    db: str | os.PathLike | JudgmentStore, pool: str | os.PathLike | pl.DataFrame, title: str = ""
):
    """The FastAPI app serving the judging page for `pool`, writing to the judgments database `db`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    judging = Judging(db, pool)
    page = PAGE.replace("{{TITLE}}", html.escape(title or f"Judging: {Path(judging.store.path).name}"))
    app = FastAPI(title="archive-encoders judging", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return error(422, f"{where or 'request'}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("judging: %s %s failed", request.method, request.url.path)
        return error(500, "internal error (see the server's log)")

    def answer(call, *args) -> Any:
        try:
            return call(*args)
        except LookupError as err:
            return error(404, str(err.args[0]))
        except ValueError as err:
            return error(422, str(err))

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP})

    @app.get("/api/next")
    def next_query(annotator: str, after: str | None = None):
        return answer(judging.next_query, annotator, after)

    @app.get("/api/query")
    def one_query(annotator: str, query_id: str):
        return answer(judging.query, annotator, query_id)

    async def json_object(request: Request) -> dict | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @app.get("/api/typed")
    def typed():
        return judging.typed()

    @app.post("/api/queries")
    async def add_query(request: Request):
        body = await json_object(request)
        if body is None:
            return error(400, "body: expected a JSON object")
        if "text" not in body:
            return error(422, "text: missing")
        return await run_in_threadpool(answer, judging.add_query, body["text"])

    @app.post("/api/judge")
    async def judge(request: Request):
        body = await json_object(request)
        if body is None:
            return error(400, "body: expected a JSON object")
        missing = [k for k in ("query_id", "corpus_id", "annotator", "grade") if k not in body]
        if missing:
            return error(422, f"{missing[0]}: missing")
        for key in ("query_id", "corpus_id"):
            if not isinstance(body[key], str):
                return error(422, f"{key}: must be a string")
        # the write waits on SQLite's lock (busy timeout): in a worker thread, never on the event loop
        args = (body["query_id"], body["corpus_id"], body["annotator"], body["grade"])
        return await run_in_threadpool(answer, judging.judge, *args)

    app.state.judging = judging
    return app


# Nothing outside the page may load: inline script and style only, fetches to this server only.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
body { font: 16px/1.45 system-ui, sans-serif; max-width: 56rem; margin: 1rem auto; padding: 0 1rem; }
header { display: flex; gap: 1rem; align-items: baseline; justify-content: space-between; }
#query { font-size: 1.3rem; margin: .5rem 0 1rem; }
.passage { border: 1px solid #ccc; border-radius: 6px; padding: .6rem .8rem; margin: .6rem 0; }
.passage:focus { outline: 3px solid #2a6ede; }
.passage h3 { margin: 0 0 .3rem; font-size: 1rem; }
.passage p { margin: 0 0 .5rem; white-space: pre-wrap; }
.passage button { min-width: 7rem; }
.passage button.on { font-weight: bold; background: #2a6ede; color: #fff; }
.g0 { border-left: 6px solid #999; }
.g1 { border-left: 6px solid #e0a800; }
.g2 { border-left: 6px solid #28a745; }
#error { color: #b00020; } .hint { color: #555; font-size: .9rem; } [hidden] { display: none; }
</style></head>
<body>
<header><h1>{{TITLE}}</h1><span><span id="who"></span> <button id="switch" hidden>change name</button></span>
</header>
<form id="name-form" hidden>
  <label>Your name (kept in this browser):
    <input id="name" autocomplete="name" maxlength="100" required></label>
  <button type="submit">Start judging</button>
</form>
<main id="judging" hidden>
  <div id="progress" role="status"></div>
  <div id="query"></div>
  <p class="hint">Grade each passage: 0 not relevant, 1 partly relevant, 2 relevant.
  Keys: j/k or arrows move, 0/1/2 grade, n next query.</p>
  <div id="passages"></div>
  <button id="next">Next query (n)</button>
</main>
<p id="done" hidden>Every pooled passage has your grade. Thank you.</p>
<form id="add-form">
  <label>A query of your own: <input id="new-query" maxlength="500" size="40"></label>
  <button type="submit">Add to the pool</button>
  <p class="hint" id="waiting" role="status"></p>
</form>
<p id="error" role="alert"></p>
<script>
"use strict";
const KEY = "archive-encoders.judging.annotator";
const LABELS = ["0 not relevant", "1 partly", "2 relevant"];
let annotator = localStorage.getItem(KEY);
let current = null, focusAt = 0, queue = Promise.resolve();
const $ = (id) => document.getElementById(id);

function showError(message) { $("error").textContent = message || ""; }

async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({error: "HTTP " + response.status}));
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}

function setProgress(p) {
  const here = current ? current.passages.filter((x) => x.grade !== null).length : 0;
  const of = current ? current.passages.length : 0;
  $("progress").textContent = `judged ${p.judged} / ${p.total} passages, ${p.queries_done} / ${p.queries}` +
    ` queries done` + (current ? `; this query ${here} / ${of}` : "");
}

function render() {
  $("query").textContent = current.query;
  const list = $("passages");
  list.replaceChildren();
  current.passages.forEach((p, i) => {
    const box = document.createElement("section");
    box.className = "passage" + (p.grade === null ? "" : " g" + p.grade);
    box.tabIndex = -1;
    box.dataset.corpusId = p.corpus_id;
    box.dataset.grade = p.grade === null ? "" : String(p.grade);
    const h = document.createElement("h3");
    h.textContent = p.title || "(untitled)";
    const t = document.createElement("p");
    t.textContent = p.text;
    box.append(h, t);
    LABELS.forEach((label, g) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      if (p.grade === g) b.className = "on";
      b.addEventListener("click", () => enqueue(() => { focusAt = i; return grade(g); }));
      box.append(b);
    });
    list.append(box);
  });
  focus(current.passages.findIndex((p) => p.grade === null));
  setProgress(current.progress);
}

function focus(i) {
  const boxes = $("passages").children;
  if (!boxes.length) return;
  focusAt = Math.max(0, Math.min(boxes.length - 1, i < 0 ? 0 : i));
  boxes[focusAt].focus();
}

async function grade(g) {
  const p = current.passages[focusAt];
  const result = await call("/api/judge", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({query_id: current.query_id, corpus_id: p.corpus_id, annotator, grade: g})});
  p.grade = g;  // only once the server has committed it
  current.progress = result.progress;
  const at = focusAt;
  render();
  const after = current.passages.findIndex((x, j) => j > at && x.grade === null);
  focus(after >= 0 ? after : Math.min(at + 1, current.passages.length - 1));
}

async function load(after) {
  const params = new URLSearchParams({annotator});
  if (after) params.set("after", after);
  const next = await call("/api/next?" + params);
  $("done").hidden = !next.done;
  $("judging").hidden = next.done;
  if (next.done) { current = null; setProgress(next.progress); return; }
  current = next;
  render();
}

function enqueue(step) {  // one request at a time, in the order asked: no grade is lost or reordered
  queue = queue.then(step).then(() => showError(""), (e) => showError(e.message));
  return queue;
}

document.addEventListener("keydown", (e) => {
  if (!current || e.target.tagName === "INPUT" || e.ctrlKey || e.metaKey || e.altKey) return;
  if (["0", "1", "2"].includes(e.key)) enqueue(() => grade(Number(e.key)));
  else if (e.key === "j" || e.key === "ArrowDown") enqueue(() => focus(focusAt + 1));
  else if (e.key === "k" || e.key === "ArrowUp") enqueue(() => focus(focusAt - 1));
  else if (e.key === "n") enqueue(() => load(current.query_id));
  else return;
  e.preventDefault();
});
$("next").addEventListener("click", () => enqueue(() => load(current && current.query_id)));
$("name-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  localStorage.setItem(KEY, name);
  start();
});

$("switch").addEventListener("click", () => {
  localStorage.removeItem(KEY);
  location.reload();
});

function showTyped(t) {
  $("waiting").textContent = t.waiting.length
    ? `${t.waiting.length} typed quer${t.waiting.length === 1 ? "y waits" : "ies wait"} for the next` +
      ` \"snakemake judging\" run, which pools it from every retriever: ${t.waiting.join(" · ")}`
    : (t.typed ? `${t.typed} typed quer${t.typed === 1 ? "y is" : "ies are"} in the pool` : "");
}

$("add-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("new-query").value.trim();
  if (!text) return;
  enqueue(async () => {
    showTyped(await call("/api/queries", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({text})}));
    $("new-query").value = "";
  });
});

function start() {
  annotator = localStorage.getItem(KEY);
  $("name-form").hidden = !!annotator;
  if (!annotator) { $("name").focus(); return; }
  $("who").textContent = "annotator: " + annotator;
  $("switch").hidden = false;
  enqueue(() => load(null));
  enqueue(async () => showTyped(await call("/api/typed")));
}
start();
</script>
</body></html>
"""
