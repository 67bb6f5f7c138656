"""Fuzzing the user-set importer: generated BEIR folders and Parquet tables (duplicate ids, NaN, empty
strings, wrong types, random Unicode) either import as a valid set or are refused with an error naming
the file, and a refusal leaves no output and no temporary behind."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import event, given
from hypothesis import strategies as st

from archive_encoders.datasets import user_sets

# A set is drawn clean (distinct ids, texts, finite scores, qrels naming the drawn ids: it imports) and
# then, in the hostile half of the examples, spoiled field by field (junk ids, texts and scores of every
# kind, repeated ids, a wrong header, a column of the wrong type or missing): each refusal is reached.
VALID_ID = st.one_of(st.sampled_from(["p1", "p2", "q1", "7", "п1", "1.0", "a b"]), st.integers(0, 99))
JUNK_ID = st.one_of(
    st.sampled_from([" ", "", None, True, 1.0, float("nan"), [], {}, "p1", 7]),
    st.text(max_size=6),
    st.integers(-(2**70), 2**70),
)
VALID_TEXT = st.one_of(st.text(min_size=1, max_size=30).filter(str.strip), st.just("текст " * 2000))
JUNK_TEXT = st.sampled_from(["", "  ", None, 5, ["a"], {"t": 1}, float("nan")])
VALID_SCORE = st.one_of(st.integers(0, 3), st.floats(0, 3))
JUNK_SCORE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "inf", "-inf", "high", "", None, True, "1e999", "0.5"]),
)
HEADER = "query-id\tcorpus-id\tscore"


def spoiled(draw, hostile: bool, value, junk):
    """`value`, or in a hostile example one time in five a junk value instead."""
    return draw(junk) if hostile and draw(st.integers(0, 4)) == 0 else value


@st.composite
def clean_set(draw):
    """(corpus ids, query ids, qrels): distinct ids (7 and "7" are one id), pairs judged once."""
    unique = st.lists(VALID_ID, min_size=1, max_size=6, unique_by=str)
    corpus_ids, query_ids = draw(unique), draw(unique)
    pairs = st.tuples(st.sampled_from(query_ids), st.sampled_from(corpus_ids), VALID_SCORE)
    qrels = draw(st.lists(pairs, min_size=1, max_size=8, unique_by=lambda p: (str(p[0]), str(p[1]))))
    return corpus_ids, query_ids, qrels


@st.composite
def beir_folders(draw):
    """(corpus records, query records, qrels rows, header)."""
    corpus_ids, query_ids, qrels = draw(clean_set())
    hostile = draw(st.booleans())

    def records(ids, titled):
        out = []
        for record_id in ids:
            record = {"_id": spoiled(draw, hostile, record_id, JUNK_ID)}
            record["text"] = spoiled(draw, hostile, draw(VALID_TEXT), JUNK_TEXT)
            if titled and draw(st.booleans()):
                record["title"] = spoiled(draw, hostile, draw(st.text(max_size=8)), JUNK_TEXT)
            if hostile and draw(st.integers(0, 9)) == 0:
                del record[draw(st.sampled_from(sorted(record)))]
            out.append(record)
        return out

    rows = [
        tuple(
            spoiled(draw, hostile, v, junk)
            for v, junk in zip(row, (JUNK_ID, JUNK_ID, JUNK_SCORE), strict=True)
        )
        for row in qrels
    ]
    header = HEADER
    if hostile and draw(st.integers(0, 4)) == 0:
        header = draw(
            st.sampled_from(["query-id\tcorpus-id", "junk", "query-id\tcorpus-id\tscore\tnote", ""])
        )
    return records(corpus_ids, True), records(query_ids, False), rows, header


def _tsv_field(value) -> str:
    return "" if value is None else str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def write_beir(folder: Path, corpus, queries, qrels, header) -> None:
    (folder / "qrels").mkdir(parents=True)
    for name, records in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        lines = (json.dumps(r, ensure_ascii=False) for r in records)
        (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    rows = ["\t".join(_tsv_field(v) for v in row) for row in qrels]
    (folder / "qrels" / "test.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def junk_column(height: int):
    """A column of one drawn type (Parquet holds one per column), with nulls and extremes."""
    return st.one_of(
        st.lists(
            st.one_of(st.text(max_size=8), st.sampled_from(["", " ", "p1", "7"]), st.none()),
            min_size=height,
            max_size=height,
        ).map(lambda v: pl.Series(v, dtype=pl.String)),
        st.lists(
            st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 9), st.none()),
            min_size=height,
            max_size=height,
        ).map(lambda v: pl.Series(v, dtype=pl.Int64)),
        st.lists(st.one_of(st.floats(), st.none()), min_size=height, max_size=height).map(
            lambda v: pl.Series(v, dtype=pl.Float64)
        ),
        st.lists(st.booleans(), min_size=height, max_size=height).map(
            lambda v: pl.Series(v, dtype=pl.Boolean)
        ),
    )


@st.composite
def parquet_tables(draw):
    """{table: {column: Series}}: the clean set's tables, in a hostile example with columns replaced by
    junk of another type, or left out."""
    corpus_ids, query_ids, qrels = draw(clean_set())
    texts = st.lists(VALID_TEXT, min_size=len(corpus_ids), max_size=len(corpus_ids))
    tables = {
        "corpus": {
            "corpus_id": pl.Series([str(i) for i in corpus_ids], dtype=pl.String),
            "text": pl.Series(draw(texts), dtype=pl.String),
            "title": pl.Series(
                draw(
                    st.lists(
                        st.one_of(st.none(), st.text(max_size=8)),
                        min_size=len(corpus_ids),
                        max_size=len(corpus_ids),
                    )
                ),
                dtype=pl.String,
            ),
        },
        "queries": {
            "query_id": pl.Series(
                query_ids,
                dtype=pl.Int64 if all(isinstance(i, int) for i in query_ids) else pl.String,
                strict=False,
            ),
            "text": pl.Series(
                draw(st.lists(VALID_TEXT, min_size=len(query_ids), max_size=len(query_ids))), dtype=pl.String
            ),
        },
        "qrels": {
            "query_id": pl.Series([str(q) for q, _, _ in qrels], dtype=pl.String),
            "corpus_id": pl.Series([str(c) for _, c, _ in qrels], dtype=pl.String),
            "score": pl.Series([float(s) for _, _, s in qrels], dtype=pl.Float64),
        },
    }
    if draw(st.booleans()):  # hostile
        for columns in tables.values():
            for name in list(columns):
                kind = draw(st.integers(0, 5))
                if kind == 0:
                    columns[name] = draw(junk_column(len(columns[name])))
                elif kind == 1:
                    del columns[name]
    return tables


def write_parquet_set(folder: Path, tables) -> None:
    folder.mkdir(parents=True)
    for table, columns in tables.items():
        pl.DataFrame(columns).write_parquet(folder / f"{table}.parquet")


def import_and_check(
    write, names_a_file: tuple[str, ...], source_judgements=None, valid_records=None
) -> None:
    """The property: a valid set, or a RetrievalSetError naming a file of the set; never a partial
    output, never a temporary left beside it. An imported set holds every judgement of its scored
    queries as given (`source_judgements`: (query, document, score) rows), and only valid records."""
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "source", Path(tmp) / "results" / "team"
        write(source)
        try:
            n = user_sets.import_user_set(source, out, "team")
        except user_sets.RetrievalSetError as err:
            event("refused")
            assert str(source) in str(err) and any(name in str(err) for name in names_a_file), err
            assert not out.exists()
        else:
            event("imported")
            corpus, query_set = user_sets.read_user_set(out)
            assert n == query_set.queries.height > 0
            assert corpus["corpus_id"].is_unique().all() and query_set.queries["query_id"].is_unique().all()
            assert all(corpus[c].null_count() == 0 for c in ("corpus_id", "text", "doc_id"))
            known = set(corpus["corpus_id"])
            for qid, judged in query_set.qrels.items():
                assert qid in set(query_set.queries["query_id"]) and set(judged) <= known
                assert all(math.isfinite(g) for g in judged.values()) and max(judged.values()) > 0
            if source_judgements is not None:
                scored = [(q, c, g) for q, c, g in source_judgements() if q in query_set.qrels]
                assert len(scored) == sum(len(j) for j in query_set.qrels.values())  # none merged away
                assert all(query_set.qrels[q][c] == g for q, c, g in scored)  # grades as given
            assert valid_records is None or valid_records()
        results = Path(tmp) / "results"
        assert not results.exists() or {p.name for p in results.iterdir()} <= {"team"}


def _is_id(value) -> bool:
    return (isinstance(value, str) and bool(value.strip())) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


@given(beir_folders())
def test_generated_beir_folders_import_or_are_refused_naming_the_file(folder):
    corpus, queries, qrels, _ = folder

    def judgements():  # asked only of an imported set, whose every score must be a number
        return [(_tsv_field(q).strip(), _tsv_field(c).strip(), float(g)) for q, c, g in qrels]

    def valid_records():
        return all(_is_id(r["_id"]) and _is_text(r["text"]) for r in corpus + queries) and all(
            r.get("title") is None or isinstance(r["title"], str) for r in corpus
        )

    import_and_check(
        lambda source: write_beir(source, *folder),
        ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"),
        judgements,
        valid_records,
    )


@given(parquet_tables())
def test_generated_parquet_tables_import_or_are_refused_naming_the_file(tables):
    import_and_check(
        lambda source: write_parquet_set(source, tables),
        ("corpus.parquet", "queries.parquet", "qrels.parquet"),
    )
