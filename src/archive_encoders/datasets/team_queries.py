"""A team's own queries (config judging.queries): a text file, one query per line, e.g. from a search
log. They have no relevance labels yet: every retriever ranks them (judging_runs.parquet in each
evaluation folder), the pool of their top hits is judged by people (judging/), and the judgments come
back as a graded set.

Query ids are stable by text (`j-` + a hash of the normalised query), so a longer file keeps the ids and
judgments of the queries it already had.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Iterable

import polars as pl

from archive_encoders.io import write_parquet

QUERY_SCHEMA = {"query_id": pl.String, "text": pl.String}
MAX_CHARS = 500  # a longer line is not a query (a pasted passage, a log line)


class TeamQueryError(ValueError):
    """A queries file the workflow cannot use; the message names the file and line."""


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def query_id(text: str) -> str:
    return "j-" + hashlib.sha1(normalise(text).casefold().encode()).hexdigest()[:12]


def read_team_queries(path: str | os.PathLike) -> pl.DataFrame:
    """(query_id, text) of every distinct non-empty line, in file order; '#' starts a comment line."""
    try:
        lines = open(path, encoding="utf-8").read().splitlines()  # noqa: SIM115
    except UnicodeDecodeError as err:
        raise TeamQueryError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    rows, seen = [], set()
    for number, line in enumerate(lines, start=1):
        if not normalise(line) or normalise(line).startswith("#"):
            continue
        text = check_query(line, f"{path}:{number}")
        qid = query_id(text)
        if qid not in seen:
            seen.add(qid)
            rows.append((qid, text))
    if not rows:
        raise TeamQueryError(f"{path}: no query (one per line; '#' lines are comments)")
    return pl.DataFrame(rows, schema=QUERY_SCHEMA, orient="row")


def check_query(text: str, where: str) -> str:
    """`text` normalised, or a TeamQueryError saying `where` it came from."""
    text = normalise(text)
    if not text:
        raise TeamQueryError(f"{where}: an empty query")
    if len(text) > MAX_CHARS:
        raise TeamQueryError(f"{where}: {len(text)} characters; a query has at most {MAX_CHARS}")
    return text


def team_queries(source: str | os.PathLike | None, typed: Iterable[str] = ()) -> pl.DataFrame:
    """The file's queries, then those typed on the judging page (judging.db) that the file lacks."""
    frame = read_team_queries(source) if source else pl.DataFrame(schema=QUERY_SCHEMA)
    seen = set(frame["query_id"])
    rows = []
    for text in typed:
        text = check_query(text, "a query typed on the judging page")
        if (qid := query_id(text)) not in seen:
            seen.add(qid)
            rows.append((qid, text))
    frame = pl.concat([frame, pl.DataFrame(rows, schema=QUERY_SCHEMA, orient="row")])
    if frame.is_empty():
        raise TeamQueryError("judging: no query (set judging.queries, or type one on the judging page)")
    return frame


def write_team_queries(
    source: str | os.PathLike | None, out: str | os.PathLike, typed: Iterable[str] = ()
) -> int:
    frame = team_queries(source, typed)
    write_parquet(frame, out)
    return frame.height
