"""A team's own judged queries (BEIR folder or Parquet), checked and written in the query-set layout."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from archive_encoders.datasets.querysets import (
    CHUNK_LEVEL,
    CORPUS_COLUMNS,
    OVERRIDE_SCHEMA,
    QUERY_SCHEMA,
    QuerySet,
    read_set,
)
from archive_encoders.io import atomic_dir, write_json, write_parquet

log = logging.getLogger(__name__)


class RetrievalSetError(ValueError):
    """A user-judged set that cannot be scored; the message names the file and the offending id."""


# How a set is read, so that nothing is guessed:
# - ids are strings, or integers (written as their decimal digits, so 7 and "7" are one id); floats,
#   booleans, nulls and empty strings are refused: 1.0 printed as "1.0" would never match a "1";
# - texts are non-empty strings (a title may be missing or null);
# - a qrels score is a finite number, kept as given: graded relevance (0.5, 1.7) is scored with its
#   grade as the gain (evaluate/metrics.py), and any score above 0 is relevant;
# - a (query, document) pair is judged once.
# Each refusal names the file and the line (JSONL, TSV) or row (Parquet).
LINE = "_line"  # the source line or row of each record, kept until the checks are done
BEIR_FILES = {"corpus": "corpus.jsonl", "queries": "queries.jsonl", "qrels": "qrels/test.tsv"}
PARQUET_FILES = {name: f"{name}.parquet" for name in ("corpus", "queries", "qrels")}
INT32_MAX = 2**31 - 1


def source_files(folder: str | os.PathLike) -> list[Path]:
    """The files a user set is read from (the BEIR layout's when it has corpus.jsonl, else the Parquet
    tables'): what the import rule depends on, so that an edited file reruns it."""
    folder = Path(folder)
    files = BEIR_FILES if (folder / BEIR_FILES["corpus"]).exists() else PARQUET_FILES
    return [folder / name for name in files.values()]


def _where(path: Path, line: int, unit: str = "line") -> str:
    return f"{path}: {unit} {line}"


# The value checks: each returns the value as stored, or raises TypeError.


def _id_text(value: Any) -> str:
    """An id as text: a non-empty string, or an integer's decimal digits."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError


def _text(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise TypeError


def _title(value: Any) -> str | None:
    """A title: a string, or missing (None, "")."""
    if value is None or isinstance(value, str):
        return value or None
    raise TypeError


AN_ID, A_TEXT, A_TITLE = "a non-empty string or an integer", "a non-empty string", "a string or null"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, blank lines left out."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if line.strip():
                    yield line_no, line
    except UnicodeDecodeError as err:
        raise RetrievalSetError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _read_jsonl(path: Path, id_key: str, titled: bool) -> pl.DataFrame:
    rows = []
    for line_no, line in _lines(path):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as err:
            reason = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply"
            raise RetrievalSetError(f"{_where(path, line_no)} is not JSON ({reason})") from None
        if not isinstance(record, dict) or id_key not in record or "text" not in record:
            raise RetrievalSetError(f"{_where(path, line_no)} lacks {id_key!r} or 'text'")
        checks = [(id_key, _id_text, AN_ID), ("text", _text, A_TEXT)]
        values = [
            _checked(record.get(key), check, f"{_where(path, line_no)}: {key} must be {what}")
            for key, check, what in checks + ([("title", _title, A_TITLE)] if titled else [])
        ]
        rows.append((*values, *([] if titled else [None]), line_no))
    return pl.DataFrame(
        rows, schema={"id": pl.String, "text": pl.String, "title": pl.String, LINE: pl.Int64}, orient="row"
    )


def _read_qrels_tsv(path: Path) -> pl.DataFrame:
    """BEIR's qrels: a header naming query-id, corpus-id and score, then one judgement per line."""
    wanted = ("query-id", "corpus-id", "score")
    lines = _lines(path)
    header_no, header = next(lines, (1, ""))
    names = [name.strip() for name in header.rstrip("\r\n").split("\t")]
    if not set(wanted) <= set(names):
        raise RetrievalSetError(f"{_where(path, header_no)}: expected a header naming {', '.join(wanted)}")
    at = [names.index(name) for name in wanted]
    rows = []
    for line_no, line in lines:
        fields = [field.strip() for field in line.rstrip("\r\n").split("\t")]
        if len(fields) != len(names):
            raise RetrievalSetError(
                f"{_where(path, line_no)}: {len(fields)} fields where the header has {len(names)}"
            )
        query_id, corpus_id, score = (fields[i] for i in at)
        if not query_id or not corpus_id:
            raise RetrievalSetError(f"{_where(path, line_no)}: an empty query-id or corpus-id")
        rows.append((query_id, corpus_id, _score(score, path, line_no), line_no))
    return _qrels_frame(rows)


def _score(value: Any, path: Path, line: int, unit: str = "line") -> float:
    try:
        score = float(value) if isinstance(value, str) else value
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError
    except (ValueError, OverflowError):
        raise RetrievalSetError(
            f"{_where(path, line, unit)}: score {_shown(value)} is not a finite number"
        ) from None
    return score


def _qrels_frame(rows: list[tuple[str, str, float, int]]) -> pl.DataFrame:
    """Scores as given: Int32 when every one is a whole number that fits (the generated sets' type),
    else Float64."""
    whole = all(float(score).is_integer() and abs(score) <= INT32_MAX for _, _, score, _ in rows)
    dtype = pl.Int32 if whole else pl.Float64
    rows = [(q, c, int(score) if whole else float(score), line) for q, c, score, line in rows]
    schema = {"query_id": pl.String, "corpus_id": pl.String, "score": dtype, LINE: pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _read_beir(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Path]]:
    files = {name: folder / rel for name, rel in BEIR_FILES.items()}
    for path in files.values():
        if not path.is_file():
            raise RetrievalSetError(f"{folder}: BEIR layout needs {path.relative_to(folder)}")
    corpus = _read_jsonl(files["corpus"], "_id", titled=True).rename({"id": "corpus_id"})
    queries = _read_jsonl(files["queries"], "_id", titled=False).rename({"id": "query_id"}).drop("title")
    return corpus, queries, _read_qrels_tsv(files["qrels"]), files


def _checked(value: Any, check, refusal: str) -> Any:
    try:
        return check(value)
    except TypeError:
        raise RetrievalSetError(f"{refusal}, not {_shown(value)}") from None


def _shown(value: Any) -> str:
    """A refused value for a message: its repr, cut short (a whole document may be the culprit)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _read_table(path: Path, wanted: Sequence[str]) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars and pyarrow raise many kinds on a file that is not Parquet
        raise RetrievalSetError(f"{path}: not a readable Parquet table ({type(err).__name__})") from None
    missing = sorted(set(wanted) - set(frame.columns))
    if missing:
        raise RetrievalSetError(f"{path}: missing column(s) {missing}")
    return frame.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(LINE))


def _table_values(frame: pl.DataFrame, column: str, path: Path, check, what: str) -> list:
    """A column's values through `check`, each refusal naming the file and row."""
    return [
        _checked(value, check, f"{_where(path, row, 'row')}: {column} must be {what}")
        for value, row in frame.select(column, LINE).rows()
    ]


def _read_parquet_set(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict[str, Path]]:
    files = {name: folder / rel for name, rel in PARQUET_FILES.items()}
    for path in files.values():
        if not path.is_file():
            raise RetrievalSetError(f"{folder}: needs {path.name} (or the BEIR layout)")
    frame = _read_table(files["corpus"], ("corpus_id", "text"))
    corpus = {
        "corpus_id": _table_values(frame, "corpus_id", files["corpus"], _id_text, AN_ID),
        "text": _table_values(frame, "text", files["corpus"], _text, A_TEXT),
        "title": _table_values(frame, "title", files["corpus"], _title, A_TITLE)
        if "title" in frame.columns
        else [None] * frame.height,
        LINE: frame[LINE].to_list(),
    }
    if "doc_id" in frame.columns:
        corpus["doc_id"] = _table_values(frame, "doc_id", files["corpus"], _id_text, AN_ID)
    frame = _read_table(files["queries"], ("query_id", "text"))
    queries = {
        "query_id": _table_values(frame, "query_id", files["queries"], _id_text, AN_ID),
        "text": _table_values(frame, "text", files["queries"], _text, A_TEXT),
        LINE: frame[LINE].to_list(),
    }
    frame = _read_table(files["qrels"], ("query_id", "corpus_id", "score"))
    qrels = zip(
        _table_values(frame, "query_id", files["qrels"], _id_text, AN_ID),
        _table_values(frame, "corpus_id", files["qrels"], _id_text, AN_ID),
        [_score(v, files["qrels"], row, "row") for v, row in frame.select("score", LINE).rows()],
        frame[LINE].to_list(),
        strict=True,
    )
    string_columns = dict.fromkeys(("corpus_id", "text", "title", "doc_id", "query_id"), pl.String)
    return (
        pl.DataFrame(corpus, schema_overrides=string_columns),
        pl.DataFrame(queries, schema_overrides=string_columns),
        _qrels_frame(list(qrels)),
        files,
    )


def check_user_set(corpus, queries, qrels, files: Mapping[str, Path]) -> None:
    """Unique ids and (query, document) pairs, qrels naming only known queries and documents, at least
    one relevant judgement; each refusal names the file and the lines."""
    for frame, keys, name in (
        (corpus, ["corpus_id"], "corpus"),
        (queries, ["query_id"], "queries"),
        (qrels, ["query_id", "corpus_id"], "qrels"),
    ):
        repeated = frame.filter(pl.struct(keys).is_duplicated())
        if not repeated.is_empty():
            first = repeated.row(0, named=True)
            lines = repeated.filter(pl.all_horizontal(pl.col(k) == first[k] for k in keys))[LINE].to_list()
            what = "id" if len(keys) == 1 else "the pair of query id and document id"
            value = first[keys[0]] if len(keys) == 1 else tuple(first[k] for k in keys)
            unit = "row" if files[name].suffix == ".parquet" else "line"
            where = f"{unit}s {', '.join(map(str, lines))}"
            raise RetrievalSetError(f"{files[name]}: {what} {value!r} appears more than once ({where})")
    for key, known, label in (
        ("query_id", set(queries["query_id"]), "query"),
        ("corpus_id", set(corpus["corpus_id"]), "document"),
    ):
        unknown = qrels.filter(~pl.col(key).is_in(sorted(known))).sort(key)
        if not unknown.is_empty():
            value, line = unknown.select(key, LINE).row(0)
            unit = "row" if files["qrels"].suffix == ".parquet" else "line"
            raise RetrievalSetError(
                f"{_where(files['qrels'], line, unit)}: names unknown {label} id {value!r}"
            )
    if qrels.filter(pl.col("score") > 0).is_empty():
        raise RetrievalSetError(f"{files['qrels']}: no judgement with a score above 0 (nothing is relevant)")


def import_user_set(source: str | os.PathLike, out_dir: str | os.PathLike, name: str) -> int:
    """Validate a user-judged set (BEIR layout or Parquet) and write it in our layout; returns its queries.

    Only judged queries with a relevant document are scored; the rest are dropped (logged). Every query
    is its own bootstrap group: nothing says which of a team's queries belong together."""
    source = Path(source)
    if not source.is_dir():
        raise RetrievalSetError(f"evaluate.retrieval_sets: {source} is not a folder")
    reader = _read_beir if (source / BEIR_FILES["corpus"]).exists() else _read_parquet_set
    corpus, queries, qrels, files = reader(source)
    check_user_set(corpus, queries, qrels, files)
    scored = set(qrels.filter(pl.col("score") > 0)["query_id"])
    dropped = queries.height - len(scored)
    if dropped:
        log.warning("%s: %d queries have no relevant document and are not scored", name, dropped)
    queries = queries.filter(pl.col("query_id").is_in(sorted(scored))).with_columns(
        group=pl.col("query_id"), kind=pl.lit("user")
    )
    doc_ids = corpus["doc_id"] if "doc_id" in corpus.columns else corpus["corpus_id"]
    corpus = corpus.with_columns(doc_id=doc_ids.cast(pl.String), cluster_id=doc_ids.cast(pl.String))
    with atomic_dir(out_dir) as tmp:
        write_parquet(corpus.select(CORPUS_COLUMNS), tmp / "corpus.parquet")
        write_parquet(queries.select(list(QUERY_SCHEMA)), tmp / "queries.parquet")
        judged = qrels.filter(pl.col("query_id").is_in(sorted(scored)))
        write_parquet(judged.drop(LINE), tmp / "qrels.parquet")
        write_parquet(pl.DataFrame(schema=OVERRIDE_SCHEMA), tmp / "overrides.parquet")
        write_json(
            tmp / "set.json",
            {
                "name": name,
                "split": "test",
                "level": CHUNK_LEVEL,
                "generator": None,
                "description": f"user-judged queries from {source.name}",
                "corpus": f"user/{name}",
                "n_queries": queries.height,
                "n_qrels": qrels.height,
            },
        )
    log.info("%s: %d queries over %d documents", name, queries.height, corpus.height)
    return queries.height


def read_user_set(folder: str | os.PathLike) -> tuple[pl.DataFrame, QuerySet]:
    return pl.read_parquet(Path(folder) / "corpus.parquet"), read_set(folder)
