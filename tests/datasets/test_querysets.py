"""Held-out query sets: fixed ICT qrels on overlapping chunks, keyword queries, title and spelling sets,
the BEIR loader and its refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from archive_encoders.corpus.clean import modernize_spelling, original_offsets
from archive_encoders.datasets import querysets as qs
from archive_encoders.datasets import user_sets
from archive_encoders.datasets.text_analysis import Analyzer

FIXTURES = Path(__file__).parents[1] / "fixtures"
SENTENCES = [
    "The harbour master counted the ships at dawn.",
    "Salt fish and timber filled the long warehouses by the quay.",
    "Every autumn the merchants of the guild met to fix the price of rye.",
    "A storm in the year of the great flood broke the old wooden pier.",
    "The new stone pier was built by convicts from the northern prisons.",
    "Lanterns were hung along it so that boats could find the harbour at night.",
]


def corpus_frames():
    """Two documents of one cluster (a scan and its near-duplicate) and one other, chunked with overlap."""
    docs, chunks = [], []
    texts = {
        "book": " ".join(SENTENCES),
        "book_rescan": " ".join(SENTENCES[:4]),  # a second scan of the first part
        "other": " ".join(s.replace("harbour", "village").replace("ships", "carts") for s in SENTENCES[::-1]),
    }
    for doc_id, text in texts.items():
        docs.append(
            {
                "doc_id": doc_id,
                "title": f"Title of {doc_id}",
                "creator": "Anon",
                "text": text,
                "text_original": text,
            }
        )
        bounds = [0]
        for s in text.split(". ")[:-1]:
            bounds.append(bounds[-1] + len(s) + 2)
        bounds.append(len(text) + 1)
        # chunks of three sentences, each starting one sentence after the last: overlaps of two sentences
        for index, first in enumerate(range(0, max(1, len(bounds) - 3))):
            start, end = bounds[first], min(len(text), bounds[first + 3] - 1)
            chunks.append(
                {
                    "chunk_id": f"{doc_id}-{index}",
                    "doc_id": doc_id,
                    "chunk_index": index,
                    "text": text[start:end],
                    "char_start": start,
                    "char_end": end,
                }
            )
    splits = pl.DataFrame(
        {
            "doc_id": ["book", "book_rescan", "other"],
            "cluster_id": ["book", "book", "other"],
            "split": ["test", "test", "train"],
        }
    )
    return pl.DataFrame(chunks), pl.DataFrame(docs), splits


def split_corpus():
    chunks, docs, splits = corpus_frames()
    return qs.split_corpus("test", chunks, docs, splits, distractors=100, rng=np.random.default_rng(0))


def test_ict_qrels_count_every_chunk_of_the_cluster_that_holds_the_sentence():
    sc = split_corpus()
    built = qs.build_ict(sc, n=100, rng=np.random.default_rng(1))
    assert built.queries, "no ICT query was made"
    original = dict(sc.corpus.select("corpus_id", "text").rows())
    seen = {cid: built.overrides.get(cid, text) for cid, text in original.items()}  # what the set ranks
    assert len({q[1] for q in built.queries}) == len(built.queries), "one query per sentence"
    for qid, sentence, group, _ in built.queries:
        relevant = {cid for q, cid, _ in built.qrels if q == qid}
        source = [cid for cid in relevant if sentence not in seen[cid]]
        assert len(source) == 1, "exactly one relevant passage has the sentence cut out: its source"
        assert sentence in original[source[0]]
        holding = {cid for cid, t in seen.items() if sentence in t and not cid.startswith("other")}
        assert relevant - set(source) == holding  # overlapping chunks, the rescan's chunks
        assert group in ("book", "book_rescan")
    assert any(len({c for q2, c, _ in built.qrels if q2 == q}) > 2 for q, *_ in built.queries)


def test_keyword_queries_have_no_stop_words_and_come_from_their_passage():
    sc = split_corpus()
    analyzer = Analyzer(["en"])
    built = qs.build_keyword(sc, n=100, rng=np.random.default_rng(2), analyzer=analyzer)
    texts = dict(sc.corpus.select("corpus_id", "text").rows())
    assert built.queries
    for qid, query, _, kind in built.queries:
        words = query.split()
        assert 2 <= len(words) <= 5 and kind == "keyword"
        assert not set(words) & analyzer.stop_words
        source = next(cid for q, cid, _ in built.qrels if q == qid)
        passage_words = set(analyzer.words(texts[source]))
        assert set(words) <= passage_words, (query, texts[source])
        for q, cid, _ in built.qrels:  # every relevant passage holds every query word's stem
            if q == qid:
                assert {analyzer.stem(w) for w in words} <= set(analyzer.tokens(texts[cid]))


def test_title_set_judges_documents_not_chunks():
    sc = split_corpus()
    built = qs.build_title(sc, n=100, rng=np.random.default_rng(3))
    assert built.kind.level == qs.DOCUMENT_LEVEL
    judged = {cid for _, cid, _ in built.qrels}
    assert judged <= set(sc.corpus["doc_id"]) and not judged & set(sc.corpus["corpus_id"])
    assert {q.split(" Anon")[0] for _, q, _, _ in built.queries} == {"Title of book", "Title of book_rescan"}


def test_modern_offsets_map_back_to_the_original_spelling():
    original = "Въ домѣ былъ отецъ. Онъ читалъ книгу и писалъ письмо."
    modern = modernize_spelling(original)[0]
    offsets = original_offsets(original, modern)
    assert offsets is not None and len(offsets) == len(modern) + 1
    start = modern.index("Он")
    assert original[offsets[start] : offsets[len(modern)]] == "Онъ читалъ книгу и писалъ письмо."
    assert original[offsets[0] : offsets[modern.index(".")]] == "Въ домѣ былъ отецъ"
    assert original_offsets(original, modern + "x") is None


def test_spelling_set_queries_modern_words_against_original_passages():
    original = " ".join(
        [
            "Въ городѣ жилъ купецъ, торговавшій хлѣбомъ и солью.",
            "Онъ строилъ новыя лавки у самой рѣки.",
            "Весною рѣка разливалась и топила амбары.",
        ]
    )
    modern = modernize_spelling(original)[0]
    other = "Другой купец торговал хлебом на ярмарке у реки."
    docs = pl.DataFrame(
        {
            "doc_id": ["old", "new"],
            "title": ["Купецъ", "Ярмарка"],
            "creator": [None, None],
            "text": [modern, other],
            "text_original": [original, other],
        }
    )
    chunks = pl.DataFrame(
        {
            "chunk_id": ["old-0", "new-0"],
            "doc_id": ["old", "new"],
            "chunk_index": [0, 0],
            "text": [modern, other],
            "char_start": [0, 0],
            "char_end": [len(modern), len(other)],
        }
    )
    splits = pl.DataFrame({"doc_id": ["old", "new"], "cluster_id": ["old", "new"], "split": ["test", "test"]})
    sc = qs.split_corpus("test", chunks, docs, splits, 0, np.random.default_rng(0))
    built = qs.build_spelling(
        sc, n=10, rng=np.random.default_rng(4), analyzer=Analyzer(["ru"]), chunks=chunks
    )
    assert built.overrides == {"old-0": original}  # the modern document keeps its text
    assert len(built.queries) == 1  # only the passage printed in old spelling makes a query
    qid, query, group, kind = built.queries[0]
    assert group == "old" and kind == "keyword" and "ъ" not in query and "ѣ" not in query
    assert [cid for q, cid, _ in built.qrels if q == qid] == ["old-0"]
    assert not set(query.split()) <= set(original.lower().split())  # the words differ in spelling


def test_build_and_read_round_trip(tmp_path):
    chunks, docs, splits = corpus_frames()
    splits = splits.with_columns(
        pl.when(pl.col("doc_id") == "book_rescan").then(pl.lit("val")).otherwise("split").alias("split")
    )
    counts = qs.build_query_sets(
        chunks,
        docs,
        splits,
        tmp_path / "sets",
        {"sets": ["ict", "keyword", "title", "spelling"], "max_queries": 3, "distractors": 5},
        ["en"],
        seed=7,
    )
    assert counts["test"]["ict"] == 3 and counts["test"]["spelling"] == 0  # capped; nothing pre-reform
    corpus, sets = qs.read_split(tmp_path / "sets", "test")
    assert set(sets) == {"ict", "keyword", "title"}  # an empty set is not written
    assert set(corpus.columns) == set(qs.CORPUS_COLUMNS)
    ict = sets["ict"]
    queries, texts, relevant = ict.ir_inputs(corpus, "query: ", "passage: ")
    assert all(q.startswith("query: ") for q in queries.values())
    assert all(texts[cid] == "passage: " + ict.overrides[cid] for cid in ict.overrides)
    assert set(relevant) == set(queries)
    with pytest.raises(ValueError, match="document-level"):
        sets["title"].ir_inputs(corpus)
    again = qs.build_query_sets(
        chunks,
        docs,
        splits,
        tmp_path / "again",
        {"sets": ["ict"], "max_queries": 3, "distractors": 5},
        ["en"],
        seed=7,
    )
    assert again["test"]["ict"] == 3
    first = pl.read_parquet(tmp_path / "sets/test/ict/queries.parquet")
    assert first.equals(pl.read_parquet(tmp_path / "again/test/ict/queries.parquet"))  # seeded


def test_beir_set_imports_and_round_trips(tmp_path):
    n = user_sets.import_user_set(FIXTURES / "beir_small", tmp_path / "team", "team")
    assert n == 3  # q4 has no relevant passage
    corpus, user = user_sets.read_user_set(tmp_path / "team")
    assert corpus["corpus_id"].to_list() == ["p1", "p2", "p3", "p4", "p5"]
    assert user.qrels == {"q1": {"p1": 1, "p4": 1}, "q2": {"p3": 2}, "q3": {"p4": 1}}
    assert user.corpus_key == "user/team" and user.level == qs.CHUNK_LEVEL and user.generator is None
    assert user.groups == {"q1": "q1", "q2": "q2", "q3": "q3"}
    # the same set as Parquet gives the same result
    parquet = tmp_path / "as_parquet"
    parquet.mkdir()
    corpus.select("corpus_id", "text", "title").write_parquet(parquet / "corpus.parquet")
    pl.read_parquet(tmp_path / "team/queries.parquet").select("query_id", "text").write_parquet(
        parquet / "queries.parquet"
    )
    pl.read_parquet(tmp_path / "team/qrels.parquet").write_parquet(parquet / "qrels.parquet")
    user_sets.import_user_set(parquet, tmp_path / "team2", "team2")
    assert user_sets.read_user_set(tmp_path / "team2")[1].qrels == user.qrels


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            lambda d: (d / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnope\t1\n"),
            "unknown document id 'nope'",
        ),
        (
            lambda d: (d / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq9\tp1\t1\n"),
            "unknown query id 'q9'",
        ),
        (
            lambda d: (d / "corpus.jsonl").write_text(
                '{"_id": "p1", "text": "a"}\n{"_id": "p1", "text": "b"}\n'
            ),
            "'p1' appears more than once",
        ),
        (lambda d: (d / "queries.jsonl").write_text("not json\n"), "line 1 is not JSON"),
        (lambda d: (d / "qrels/test.tsv").unlink(), "qrels/test.tsv"),
        (
            lambda d: (d / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp1\t0\n"),
            "no judgement with a score above 0",
        ),
    ],
    ids=["unknown document", "unknown query", "duplicate id", "bad json", "no qrels", "nothing relevant"],
)
def test_broken_beir_sets_name_the_file_and_the_id(tmp_path, breakage, message):
    folder = tmp_path / "broken"
    shutil.copytree(FIXTURES / "beir_small", folder)
    breakage(folder)
    with pytest.raises(user_sets.RetrievalSetError, match=message) as err:
        user_sets.import_user_set(folder, tmp_path / "out", "broken")
    assert str(folder) in str(err.value)
    assert not (tmp_path / "out").exists()


def _beir(tmp_path, corpus=None, queries=None, qrels=None) -> Path:
    """The beir_small fixture with any of its three files replaced (JSONL records, TSV lines)."""
    folder = tmp_path / "set"
    shutil.copytree(FIXTURES / "beir_small", folder)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        if rows is not None:
            (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    if qrels is not None:
        (folder / "qrels/test.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\n" for q in qrels)
        )
    return folder


def test_graded_relevance_is_kept_as_given_and_scored_with_its_grade(tmp_path):
    folder = _beir(tmp_path, qrels=["q1\tp1\t0.5", "q1\tp4\t1.7", "q2\tp3\t2", "q3\tp5\t0"])
    assert user_sets.import_user_set(folder, tmp_path / "out", "graded") == 2  # 0.5 is relevant
    _, user = user_sets.read_user_set(tmp_path / "out")
    assert user.qrels == {"q1": {"p1": 0.5, "p4": 1.7}, "q2": {"p3": 2.0}}
    from archive_encoders.evaluate.metrics import per_query_scores

    # p1 (0.5) above p4 (1.7): the gains are the grades, so the ranking is not ideal
    _, scores = per_query_scores({"q1": user.qrels["q1"]}, {"q1": ["p1", "p4"]}, ["ndcg@10"])
    ideal, got = 1.7 + 0.5 / np.log2(3), 0.5 + 1.7 / np.log2(3)
    assert scores["ndcg@10"][0] == pytest.approx(got / ideal)


def test_integer_ids_are_their_digits(tmp_path):
    corpus = [{"_id": 7, "text": "seven"}, {"_id": "8", "text": "eight"}]
    folder = _beir(tmp_path, corpus=corpus, queries=[{"_id": 1, "text": "q"}], qrels=["1\t7\t1", "1\t8\t0"])
    user_sets.import_user_set(folder, tmp_path / "out", "ints")
    assert user_sets.read_user_set(tmp_path / "out")[1].qrels == {"1": {"7": 1, "8": 0}}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"qrels": ["q1\tp1\t1", "q2\tp3\t1", "q1\tp1\t0"]},
            r"qrels/test.tsv: the pair .*\('q1', 'p1'\).* \(lines 2, 4\)",
        ),
        ({"corpus": [{"_id": None, "text": "a"}]}, r"corpus.jsonl: line 1: _id must be .* not None"),
        ({"corpus": [{"_id": 1.0, "text": "a"}]}, r"corpus.jsonl: line 1: _id must be .* not 1.0"),
        ({"corpus": [{"_id": True, "text": "a"}]}, r"corpus.jsonl: line 1: _id must be"),
        ({"corpus": [{"_id": "", "text": "a"}]}, r"corpus.jsonl: line 1: _id must be"),
        (
            {"corpus": [{"_id": "p1", "text": "a"}, {"_id": "p2", "text": "  "}]},
            r"corpus.jsonl: line 2: text must be",
        ),
        ({"corpus": [{"_id": "p1", "text": 5}]}, r"corpus.jsonl: line 1: text must be .* not 5"),
        ({"corpus": [{"_id": "p1", "text": "a", "title": ["x"]}]}, r"corpus.jsonl: line 1: title must be"),
        ({"queries": [{"_id": "q1", "text": None}]}, r"queries.jsonl: line 1: text must be .* not None"),
        ({"qrels": ["q1\tp1\tnan"]}, r"qrels/test.tsv: line 2: score 'nan' is not a finite number"),
        ({"qrels": ["q1\tp1\thigh"]}, r"qrels/test.tsv: line 2: score 'high' is not a finite number"),
        ({"qrels": ["q1\t\t1"]}, r"qrels/test.tsv: line 2: an empty query-id or corpus-id"),
        ({"qrels": ["q1\tp1"]}, r"qrels/test.tsv: line 2: 2 fields"),
    ],
    ids=[
        "duplicate pair",
        "null id",
        "float id",
        "boolean id",
        "empty id",
        "blank text",
        "number as text",
        "list as title",
        "null query text",
        "NaN score",
        "word as score",
        "empty corpus id",
        "missing score",
    ],
)
def test_bad_user_set_records_are_refused_by_file_and_line(tmp_path, files, message):
    folder = _beir(tmp_path, **files)
    with pytest.raises(user_sets.RetrievalSetError, match=message):
        user_sets.import_user_set(folder, tmp_path / "out", "bad")
    assert not (tmp_path / "out").exists()


def _parquet_set(folder: Path, corpus: dict, queries: dict, qrels: dict) -> Path:
    folder.mkdir()
    for name, columns in (("corpus", corpus), ("queries", queries), ("qrels", qrels)):
        pl.DataFrame(columns, strict=False).write_parquet(folder / f"{name}.parquet")
    return folder


PARQUET_OK = {
    "corpus": {"corpus_id": ["p1", "p2"], "text": ["one", "two"]},
    "queries": {"query_id": ["q1"], "text": ["which"]},
    "qrels": {"query_id": ["q1", "q1"], "corpus_id": ["p1", "p2"], "score": [1, 0]},
}


@pytest.mark.parametrize(
    ("table", "column", "values", "message"),
    [
        ("corpus", "corpus_id", [1.0, 2.0], r"corpus.parquet: row 1: corpus_id must be .* not 1.0"),
        ("corpus", "text", ["one", None], r"corpus.parquet: row 2: text must be .* not None"),
        ("queries", "query_id", [None], r"queries.parquet: row 1: query_id must be"),
        ("qrels", "corpus_id", ["p1", "p1"], r"qrels.parquet: the pair .* \(rows 1, 2\)"),
        ("qrels", "score", [1.0, float("nan")], r"qrels.parquet: row 2: score nan is not a finite number"),
    ],
    ids=["float ids", "null text", "null query id", "duplicate pair", "NaN score"],
)
def test_bad_parquet_user_sets_are_refused_by_file_and_row(tmp_path, table, column, values, message):
    tables = {name: dict(columns) for name, columns in PARQUET_OK.items()}
    tables[table][column] = values
    folder = _parquet_set(tmp_path / "set", **tables)
    with pytest.raises(user_sets.RetrievalSetError, match=message):
        user_sets.import_user_set(folder, tmp_path / "out", "bad")
    assert not (tmp_path / "out").exists()


def test_integer_parquet_ids_match_string_ids(tmp_path):
    tables = {name: dict(columns) for name, columns in PARQUET_OK.items()}
    tables["corpus"]["corpus_id"] = [1, 2]
    tables["qrels"]["corpus_id"] = ["1", "2"]
    user_sets.import_user_set(_parquet_set(tmp_path / "set", **tables), tmp_path / "out", "ints")
    assert user_sets.read_user_set(tmp_path / "out")[1].qrels == {"q1": {"1": 1, "2": 0}}


def test_set_json_describes_the_set(tmp_path):
    chunks, docs, splits = corpus_frames()
    settings = {"sets": ["ict"], "max_queries": 5, "distractors": 0}
    qs.build_query_sets(chunks, docs, splits, tmp_path / "s", settings, ["en"], seed=1)
    meta = json.loads((tmp_path / "s/test/ict/set.json").read_text())
    assert meta | {"n_queries": 0, "n_qrels": 0} == {
        "name": "ict",
        "split": "test",
        "level": "chunk",
        "generator": "inverse_cloze",
        "origin": "generated",
        "corpus": "test",
        "description": qs.SET_KINDS["ict"].description,
        "n_queries": 0,
        "n_qrels": 0,
    }
    assert meta["n_queries"] > 0 and meta["n_qrels"] >= meta["n_queries"]


# --- the sets people wrote: subject headings and descriptions (items.parquet) ---

LONG_DESCRIPTION = " ".join(f"w{i}" for i in range(35))  # 35 words: the query keeps the first 30


def catalogue_frames():
    """Eight documents (test: d1-d3; train, the distractors: d4-d8), one chunk each, and their item list;
    d9 is catalogued but has no document (rejected by the clean stage)."""
    doc_ids = [f"d{i}" for i in range(1, 9)]
    docs = pl.DataFrame(
        {
            "doc_id": doc_ids,
            "title": [f"Book {d}" for d in doc_ids],
            "creator": ["Anon"] * 8,
            "text": [f"The text of book {d}." for d in doc_ids],
            "text_original": [f"The text of book {d}." for d in doc_ids],
        }
    )
    chunks = docs.select(
        (pl.col("doc_id") + "-0").alias("chunk_id"),
        "doc_id",
        pl.lit(0).alias("chunk_index"),
        "text",
        pl.lit(0).alias("char_start"),
        pl.col("text").str.len_chars().alias("char_end"),
    )
    splits = pl.DataFrame({"doc_id": doc_ids, "cluster_id": doc_ids, "split": ["test"] * 3 + ["train"] * 5})
    lit = "English literature"
    items = pl.DataFrame(
        {
            "identifier": [*doc_ids, "d9"],
            "subject": [
                ["Whaling", lit, "Travel."],
                ["whaling ", lit],  # the same heading, written otherwise
                [lit, "Geology"],
                ["Whaling", lit],
                [lit, "travel"],
                ["Geology", lit, "Pottery"],  # Pottery: no member carries it
                [lit],
                [lit],
                ["Whaling"],  # d9: not in the corpus, so not relevant
            ],
            "description": [
                LONG_DESCRIPTION,
                "Short notes on whaling.",
                None,
                "Short  notes on whaling.",  # the same catalogue entry on a distractor
                "Only a distractor has this one.",
                None,
                None,
                None,
                "Not in the corpus.",
            ],
        },
        schema={"identifier": pl.String, "subject": pl.List(pl.String), "description": pl.String},
    )
    return chunks, docs, splits, items


def _qrels_by_query(built: qs.BuiltSet) -> dict[str, set[str]]:
    texts = {qid: text for qid, text, _, _ in built.queries}
    out: dict[str, set[str]] = {}
    for qid, doc_id, grade in built.qrels:
        assert grade == 1
        out.setdefault(texts[qid], set()).add(doc_id)
    return out


def test_subject_set_finds_every_corpus_document_catalogued_under_the_heading():
    chunks, docs, splits, items = catalogue_frames()
    sc = qs.split_corpus("test", chunks, docs, splits, distractors=100, rng=np.random.default_rng(0))
    # 8 documents in the corpus, share 0.5: a heading on more than 4 of them (English literature, all
    # 8) is dropped; Pottery has no test document; headings match after normalisation
    built = qs.build_subject(sc, 100, np.random.default_rng(1), items=items, subject_max_share=0.5)
    assert built.kind.level == qs.DOCUMENT_LEVEL and built.kind.origin == qs.METADATA
    assert _qrels_by_query(built) == {
        "Whaling": {"d1", "d2", "d4"},
        "Travel.": {"d1", "d5"},
        "Geology": {"d3", "d6"},
    }
    groups = {text: group for _, text, group, _ in built.queries}
    assert groups == {"Whaling": "d1", "Travel.": "d1", "Geology": "d3"}  # a test document
    # the default share (0.25: at most 2 of 8 documents) drops Whaling too
    default = qs.build_subject(sc, 100, np.random.default_rng(1), items=items, subject_max_share=0.25)
    assert set(_qrels_by_query(default)) == {"Travel.", "Geology"}


def test_description_set_finds_its_item_from_the_first_30_words():
    chunks, docs, splits, items = catalogue_frames()
    sc = qs.split_corpus("test", chunks, docs, splits, distractors=100, rng=np.random.default_rng(0))
    built = qs.build_description(sc, 100, np.random.default_rng(1), items=items)
    assert built.kind.level == qs.DOCUMENT_LEVEL and built.kind.origin == qs.METADATA
    assert _qrels_by_query(built) == {
        " ".join(f"w{i}" for i in range(30)): {"d1"},
        "Short notes on whaling.": {"d2", "d4"},  # one entry on two items: both relevant
    }


def test_metadata_sets_are_written_with_their_origin_and_left_out_without_items(tmp_path):
    chunks, docs, splits, items = catalogue_frames()
    settings = {"sets": ["title", "subject", "description"], "max_queries": 10, "distractors": 100}
    counts = qs.build_query_sets(chunks, docs, splits, tmp_path / "s", settings, ["en"], seed=1, items=items)
    assert counts == {"test": {"title": 3, "subject": 2, "description": 2}}  # val has no document
    _, sets = qs.read_split(tmp_path / "s", "test")
    assert sets["subject"].level == qs.DOCUMENT_LEVEL and sets["subject"].generator is None
    meta = json.loads((tmp_path / "s/test/description/set.json").read_text())
    assert meta["origin"] == "metadata" and meta["generator"] is None
    assert json.loads((tmp_path / "s/test/title/set.json").read_text())["origin"] == "generated"
    # without an item list (or with one that predates descriptions) the sets have no query: left out
    counts = qs.build_query_sets(chunks, docs, splits, tmp_path / "n", settings, ["en"], seed=1)
    assert counts["test"] | {"title": 0} == {"title": 0, "subject": 0, "description": 0}
    assert set(qs.read_split(tmp_path / "n", "test")[1]) == {"title"}


def test_query_sets_reads_the_item_list(tmp_path):
    chunks, docs, splits, items = catalogue_frames()
    old = items.drop("description")  # an items.parquet written before descriptions were fetched
    old.write_parquet(tmp_path / "items.parquet")
    got = qs._read_items(tmp_path / "items.parquet")
    assert got.columns == ["identifier", "subject"]
    assert qs._read_items(None) is None


def test_set_kinds_say_where_their_queries_come_from():
    assert {k.name for k in qs.SET_KINDS.values() if k.origin == qs.METADATA} == {"subject", "description"}
    assert all(k.origin in (qs.GENERATED, qs.METADATA) for k in qs.SET_KINDS.values())
    assert set(qs.SET_KINDS) == set(qs.BUILDERS)
