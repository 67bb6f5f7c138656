"""Held-out query sets: several kinds of queries over one corpus per split, each scored on its own.

For each held-out split (`val` for choices made during training and fusion, `test` for the report) the
corpus is the split's chunks plus distractor chunks from the splits before it (test: train + val;
val: train), encoded once and shared by every set. A set is queries + qrels + optional corpus overrides
(passages this set sees with another text, e.g. with the query sentence cut out):

- ict: inverse-cloze queries; the source passage has the sentence cut out, and every other passage of
  the same near-duplicate cluster that contains the sentence (chunk overlaps, duplicate scans) is
  relevant too;
- keyword: 2-5 distinctive words of a passage (queries.KeywordQueries); relevant: the passage and the
  passages of its cluster holding every query word;
- title: a book's title (sometimes with its creator) must find the book: documents are scored by their
  best passage, metrics are per document;
- spelling: keyword queries in modern spelling against passages in their original pre-1918 spelling
  (documents.text_original), so each model's robustness to old orthography is measured;
- subject: a subject heading a cataloguer gave the items (items.parquet `subject`) finds every document
  of the split's corpus catalogued under it (document level; which headings count: `subject_headings`);
- description: the first ~30 words of an item's human-written description (items.parquet
  `description`) find that item (document level);
- user sets (config evaluate.retrieval_sets): a team's own labelled queries in BEIR layout or Parquet,
  with their own corpus (`import_user_set`).

The first four are generated from the text (origin "generated"); subject and description are written by
people, read from the archive's metadata (origin "metadata"). No set makes training pairs: those come from
the query generators (datasets/triplets.py), never from a query set.

Files (docs/ARCHITECTURE.md): <root>/<split>/corpus.parquet and <root>/<split>/<set>/{queries,qrels,
overrides}.parquet + set.json. `queries.group` is the unit the paired bootstrap resamples (the source
document: queries from one book are not independent).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.datasets import generators as gen
from archive_encoders.datasets.text_analysis import Analyzer
from archive_encoders.io import atomic_dir, write_json, write_parquet
from archive_encoders.sampling import sample_in_order

log = logging.getLogger(__name__)

HELD_OUT = ("val", "test")
DISTRACTOR_SPLITS = {"val": ("train",), "test": ("train", "val")}
CHUNK_LEVEL, DOCUMENT_LEVEL = "chunk", "document"

QUERY_SCHEMA = {"query_id": pl.String, "text": pl.String, "group": pl.String, "kind": pl.String}
QRELS_SCHEMA = {"query_id": pl.String, "corpus_id": pl.String, "score": pl.Int32}
OVERRIDE_SCHEMA = {"corpus_id": pl.String, "text": pl.String}
CORPUS_COLUMNS = ("corpus_id", "doc_id", "cluster_id", "title", "text")


GENERATED, METADATA = "generated", "metadata"
DESCRIPTION_WORDS = 30  # a description query: its first words, as many as a long search box holds


@dataclass(frozen=True)
class SetKind:
    """A held-out query set: what its queries are, where they come from, what it scores.

    Query sets only measure: training pairs come from the query generators (datasets/triplets.py reads
    datasets.query_kinds), never from a set, so a metadata set is never trained on.
    `lexical_by_construction`: its queries are words of the relevant passage itself, so BM25 scores ~1.0
    on it whatever the encoders are worth; it is reported, but decides the verdict only when the config
    names it (report.decision_sets).
    """

    name: str
    # generators.GENERATORS: a training pair of this kind makes the set in-distribution (None: no
    # generator makes these queries)
    generator: str | None
    level: str  # chunk: passages are ranked; document: documents, by their best passage
    description: str
    # GENERATED: made from the text by a generator; METADATA: written by people (the archive's
    # cataloguers), read from items.parquet
    origin: str = GENERATED
    lexical_by_construction: bool = False


SET_KINDS = {
    k.name: k
    for k in (
        SetKind("ict", "inverse_cloze", CHUNK_LEVEL, "a sentence of a passage finds the rest of it"),
        SetKind(
            "keyword",
            "keyword",
            CHUNK_LEVEL,
            "2-5 distinctive words of a passage find it",
            lexical_by_construction=True,
        ),
        SetKind("title", "title", DOCUMENT_LEVEL, "a title (and creator) finds its book"),
        SetKind(
            "spelling",
            "keyword",
            CHUNK_LEVEL,
            "modern-spelling keywords find pre-1918 passages",
            lexical_by_construction=True,
        ),
        SetKind(
            "subject",
            None,
            DOCUMENT_LEVEL,
            "a cataloguer's subject heading finds every book catalogued under it",
            origin=METADATA,
        ),
        SetKind(
            "description",
            None,
            DOCUMENT_LEVEL,
            f"the first {DESCRIPTION_WORDS} words of a book's human-written description find the book",
            origin=METADATA,
        ),
    )
}


def lexical_by_construction(name: str) -> bool:
    """A built-in set whose queries are the relevant passage's own words (BM25 wins it by construction)."""
    kind = SET_KINDS.get(name)
    return bool(kind and kind.lexical_by_construction)


def people_written(name: str) -> bool:
    """Queries a person wrote: a team's own set (any name that is not a built-in kind) or a built-in set
    of people-written origin (cataloguers' metadata)."""
    kind = SET_KINDS.get(name)
    return kind is None or kind.origin != GENERATED


# --- reading ---


@dataclass
class QuerySet:
    name: str
    split: str
    level: str
    generator: str | None  # None for a user-judged set
    queries: pl.DataFrame  # query_id, text, group, kind
    # query_id -> {corpus_id or doc_id: grade}; a user set's grades may be fractional (user_sets.py)
    qrels: dict[str, dict[str, float]]
    overrides: dict[str, str] = field(default_factory=dict)  # corpus_id -> the text this set sees
    corpus_key: str = ""  # which corpus it ranks: "<split>" or "user/<name>"
    description: str = ""

    @property
    def groups(self) -> dict[str, str]:
        return dict(zip(self.queries["query_id"], self.queries["group"], strict=True))

    def ir_inputs(
        self, corpus: pl.DataFrame, query_prefix: str = "", passage_prefix: str = ""
    ) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
        """The (queries, corpus, relevant) dicts of sentence-transformers' InformationRetrievalEvaluator,
        overrides and prefixes applied (chunk-level sets only)."""
        if self.level != CHUNK_LEVEL:
            raise ValueError(f"query set {self.name}: a {self.level}-level set has no passage qrels")
        texts = {
            cid: self.overrides.get(cid, text) for cid, text in corpus.select("corpus_id", "text").rows()
        }
        relevant = {q: {c for c, g in docs.items() if g > 0} for q, docs in self.qrels.items()}
        return (
            {qid: query_prefix + text for qid, text in self.queries.select("query_id", "text").rows()},
            {cid: passage_prefix + text for cid, text in texts.items()},
            {q: docs for q, docs in relevant.items() if docs},
        )


def qrels_dict(frame: pl.DataFrame) -> dict[str, dict[str, float]]:
    """{query: {passage or document: grade}}, grades as stored (int, or float for graded user sets)."""
    out: dict[str, dict[str, float]] = {}
    for qid, cid, grade in frame.select("query_id", "corpus_id", "score").rows():
        out.setdefault(qid, {})[cid] = grade
    return out


def read_set(folder: str | os.PathLike) -> QuerySet:
    folder = Path(folder)
    meta = json.loads((folder / "set.json").read_text(encoding="utf-8"))
    overrides = pl.read_parquet(folder / "overrides.parquet")
    return QuerySet(
        name=meta["name"],
        split=meta["split"],
        level=meta["level"],
        generator=meta.get("generator"),
        queries=pl.read_parquet(folder / "queries.parquet"),
        qrels=qrels_dict(pl.read_parquet(folder / "qrels.parquet")),
        overrides=dict(overrides.rows()),
        corpus_key=meta["corpus"],
        description=meta.get("description", ""),
    )


def read_split(root: str | os.PathLike, split: str) -> tuple[pl.DataFrame, dict[str, QuerySet]]:
    """The split's corpus and its generated sets, by name (sets without a query are not written)."""
    folder = Path(root) / split
    if not (folder / "corpus.parquet").is_file():  # a split without documents (a tiny corpus)
        return pl.DataFrame(schema=dict.fromkeys(CORPUS_COLUMNS, pl.String)), {}
    corpus = pl.read_parquet(folder / "corpus.parquet")
    sets = {meta.parent.name: read_set(meta.parent) for meta in sorted(folder.glob("*/set.json"))}
    return corpus, sets


# --- building ---


def _normalise(text: str) -> str:
    """Lowercase modern-spelling words only: how "contains the query sentence" is tested, across chunk
    boundaries, spacing, punctuation and pre-1918 spelling alike."""
    from archive_encoders.corpus.clean import modernize_spelling

    return " ".join(re.findall(r"[^\W_]+", modernize_spelling(text.lower())[0]))


def _query_id(name: str, key: str) -> str:
    import hashlib

    return f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


@dataclass
class SplitCorpus:
    """One held-out split's corpus, with what the generators need to look things up."""

    split: str
    corpus: pl.DataFrame  # CORPUS_COLUMNS + is_member (a passage of the split, not a distractor)
    documents: pl.DataFrame  # doc_id, title, creator, cluster_id, text, text_original

    def members(self) -> pl.DataFrame:
        return self.corpus.filter(pl.col("is_member"))

    def by_cluster(self) -> dict[str, list[tuple[str, str]]]:
        """cluster_id -> [(corpus_id, text)] of the split's own passages."""
        out: dict[str, list[tuple[str, str]]] = {}
        for cid, cluster, text in self.members().select("corpus_id", "cluster_id", "text").rows():
            out.setdefault(cluster, []).append((cid, text))
        return out


@dataclass
class BuiltSet:
    kind: SetKind
    queries: list[tuple[str, str, str, str]]  # query_id, text, group, kind
    qrels: list[tuple[str, str, int]]
    overrides: dict[str, str] = field(default_factory=dict)


def build_ict(sc: SplitCorpus, n: int, rng: np.random.Generator, **_) -> BuiltSet:
    """Inverse cloze: the source passage loses the sentence; its cluster's passages holding it count."""
    candidates = []
    for cid, doc_id, cluster, text in sc.members().select("corpus_id", "doc_id", "cluster_id", "text").rows():
        pair = gen.inverse_cloze(text, rng)
        if pair:
            candidates.append((cid, doc_id, cluster, *pair))
    return _cut_sentence_set(
        SET_KINDS["ict"], sc, sample_in_order(_distinct_sentences(candidates), n, rng), {}
    )


def _distinct_sentences(candidates: list[tuple]) -> list[tuple]:
    """One query per sentence: overlapping chunks share sentences, and two queries with one text but
    different sources would judge each other's passages inconsistently."""
    seen: set[str] = set()
    out = []
    for candidate in candidates:
        key = _normalise(candidate[3])
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def _cut_sentence_set(kind: SetKind, sc: SplitCorpus, chosen: list[tuple], texts: dict[str, str]) -> BuiltSet:
    """Queries whose sentence is cut out of their source passage. The cuts are made first, so what is
    relevant is judged on the texts the set's corpus really holds: the source, and every passage of its
    cluster that still contains the sentence. `texts` holds the set's other replaced passages."""
    built = BuiltSet(kind, [], [])
    built.overrides = dict(texts)
    built.overrides.update({cid: rest for cid, _, _, _, rest in chosen})
    clusters = {
        cluster: [(cid, _normalise(built.overrides.get(cid, text))) for cid, text in passages]
        for cluster, passages in sc.by_cluster().items()
    }
    for cid, doc_id, cluster, sentence, _ in chosen:
        qid = _query_id(kind.name, cid)
        built.queries.append((qid, sentence, doc_id, kind.generator))
        built.qrels.append((qid, cid, 1))
        needle = _normalise(sentence)
        built.qrels.extend(
            (qid, other, 1) for other, text in clusters[cluster] if other != cid and needle in text
        )
    return built


def build_keyword(sc: SplitCorpus, n: int, rng: np.random.Generator, analyzer: Analyzer, **_) -> BuiltSet:
    """Keyword queries; the passages of the source's cluster that hold every query word are relevant."""
    candidates = _keyword_candidates(sc, analyzer, rng)
    return _keyword_set(SET_KINDS["keyword"], sc, sample_in_order(candidates, n, rng), analyzer, {})


def _keyword_candidates(
    sc: SplitCorpus, analyzer: Analyzer, rng: np.random.Generator, only: set[str] | None = None
) -> list[tuple]:
    """(corpus_id, doc_id, cluster, query, stems) for the split's passages (those in `only`, if given);
    IDF counted over the whole split corpus, distractors included."""
    keywords = gen.KeywordQueries(sc.corpus["text"].to_list(), sc.corpus["doc_id"].to_list(), analyzer)
    candidates = []
    for cid, doc_id, cluster, text in sc.members().select("corpus_id", "doc_id", "cluster_id", "text").rows():
        made = keywords.make(text, rng) if only is None or cid in only else None
        if made:
            candidates.append((cid, doc_id, cluster, *made))
    return candidates


def _keyword_set(
    kind: SetKind, sc: SplitCorpus, chosen: list[tuple], analyzer: Analyzer, overrides: dict[str, str]
) -> BuiltSet:
    """Keyword queries judged on the set's own texts: the source and every passage of its cluster that
    holds every query word's stem (the analyzer folds pre-1918 letters, so either spelling agrees)."""
    built = BuiltSet(kind, [], [], overrides=dict(overrides))
    clusters = sc.by_cluster()
    stems_of = {
        cid: set(analyzer.tokens(overrides.get(cid, text)))
        for passages in clusters.values()
        for cid, text in passages
    }
    for cid, doc_id, cluster, query, stems in chosen:
        qid = _query_id(kind.name, cid)
        built.queries.append((qid, query, doc_id, kind.generator))
        built.qrels.append((qid, cid, 1))
        wanted = set(stems)
        built.qrels.extend(
            (qid, other, 1) for other, _ in clusters[cluster] if other != cid and wanted <= stems_of[other]
        )
    return built


def build_title(sc: SplitCorpus, n: int, rng: np.random.Generator, **_) -> BuiltSet:
    """Book search: each distinct title of the split finds every corpus document carrying that title."""
    docs_in_corpus = set(sc.corpus["doc_id"])
    docs = sc.documents.filter(pl.col("doc_id").is_in(list(docs_in_corpus)))
    by_title: dict[str, list[str]] = {}
    for doc_id, title in docs.select("doc_id", "title").rows():
        clean = gen.clean_title(title)
        if clean:
            by_title.setdefault(clean.casefold(), []).append(doc_id)
    member_docs = set(sc.members()["doc_id"])
    info = {d: (t, c) for d, t, c in sc.documents.select("doc_id", "title", "creator").rows()}
    candidates = []
    for key, doc_ids in sorted(by_title.items()):
        held_out = sorted(d for d in doc_ids if d in member_docs)
        if held_out:
            title, creator = info[held_out[0]]
            candidates.append(
                (key, held_out[0], gen.title_query(gen.clean_title(title), creator, rng), doc_ids)
            )
    built = BuiltSet(SET_KINDS["title"], [], [])
    for key, group, query, doc_ids in sample_in_order(candidates, n, rng):
        qid = _query_id("title", key)
        built.queries.append((qid, query, group, "title"))
        built.qrels.extend((qid, doc_id, 1) for doc_id in sorted(doc_ids))
    return built


def build_spelling(
    sc: SplitCorpus, n: int, rng: np.random.Generator, analyzer: Analyzer, chunks: pl.DataFrame, **_
) -> BuiltSet:
    """Modern-spelling keyword queries against passages in their original (pre-1918) spelling: the words
    a reader types today, looking for a book printed before the reform."""
    corpus_ids = set(sc.corpus["corpus_id"])
    originals = {cid: t for cid, t in original_chunk_texts(chunks, sc.documents).items() if cid in corpus_ids}
    candidates = _keyword_candidates(sc, analyzer, rng, only=set(originals))  # passages in old spelling
    return _keyword_set(SET_KINDS["spelling"], sc, sample_in_order(candidates, n, rng), analyzer, originals)


def normalise_heading(heading: str) -> str:
    """How two subject headings are compared: case-folded, whitespace collapsed, trailing dots and
    spaces dropped ("Russian fiction." and "russian  fiction" are one heading)."""
    return " ".join(heading.split()).rstrip(" .").casefold()


def _corpus_items(sc: SplitCorpus, items: pl.DataFrame | None, column: str) -> list[tuple[str, Any]]:
    """(doc_id, items.parquet `column`) for every document of the split's corpus (members and
    distractors), in doc_id order; [] without an item list or without that column."""
    if items is None or column not in items.columns:
        return []
    in_corpus = set(sc.corpus["doc_id"])
    rows = items.select("identifier", column).filter(pl.col("identifier").is_in(list(in_corpus)))
    return sorted(rows.rows())


def subject_headings(
    sc: SplitCorpus, items: pl.DataFrame | None, max_share: float
) -> dict[str, tuple[str, list[str]]]:
    """normalised heading -> (the heading as first written, [doc_id]) for the headings a subject query
    may use: carried by at least one member of the split and by at most `max_share` of the corpus's
    documents (at least one). A heading that covers more than that share (a language, "Russian
    literature" over a Russian corpus) says almost nothing about which book is meant."""
    catalogued = _corpus_items(sc, items, "subject")
    by_heading: dict[str, tuple[str, list[str]]] = {}
    for doc_id, headings in catalogued:
        for heading in headings or []:
            key = normalise_heading(heading)
            if key and doc_id not in by_heading.setdefault(key, (heading.strip(), []))[1]:
                by_heading[key][1].append(doc_id)
    n_docs = sc.corpus["doc_id"].n_unique()
    cap = max(1, int(max_share * n_docs))
    members = set(sc.members()["doc_id"])
    return {
        key: (heading, doc_ids)
        for key, (heading, doc_ids) in sorted(by_heading.items())
        if len(doc_ids) <= cap and members.intersection(doc_ids)
    }


def build_subject(
    sc: SplitCorpus, n: int, rng: np.random.Generator, items: pl.DataFrame | None = None, **settings
) -> BuiltSet:
    """Subject headings as queries: each finds every corpus document catalogued under it, distractors
    included (a distractor under the heading is as right an answer as a member)."""
    members = set(sc.members()["doc_id"])
    headings = subject_headings(sc, items, settings.get("subject_max_share", 0.25))
    built = BuiltSet(SET_KINDS["subject"], [], [])
    for key, (heading, doc_ids) in sample_in_order(list(headings.items()), n, rng):
        qid = _query_id("subject", key)
        group = min(d for d in doc_ids if d in members)
        built.queries.append((qid, heading, group, "subject"))
        built.qrels.extend((qid, doc_id, 1) for doc_id in doc_ids)
    return built


def description_query(description: str | None) -> str:
    """The first DESCRIPTION_WORDS words of a description ("" when there is none)."""
    return " ".join((description or "").split()[:DESCRIPTION_WORDS])


def build_description(
    sc: SplitCorpus, n: int, rng: np.random.Generator, items: pl.DataFrame | None = None, **_
) -> BuiltSet:
    """Each member's description (truncated) finds that item; items whose truncated descriptions are
    the same text (one catalogue entry copied onto two scans) are relevant to one shared query."""
    by_text: dict[str, list[str]] = {}
    for doc_id, description in _corpus_items(sc, items, "description"):
        query = description_query(description)
        if query:
            by_text.setdefault(query, []).append(doc_id)
    members = set(sc.members()["doc_id"])
    candidates = [(query, docs) for query, docs in by_text.items() if members.intersection(docs)]
    built = BuiltSet(SET_KINDS["description"], [], [])
    for query, doc_ids in sample_in_order(sorted(candidates), n, rng):
        qid = _query_id("description", query)
        built.queries.append((qid, query, min(d for d in doc_ids if d in members), "description"))
        built.qrels.extend((qid, doc_id, 1) for doc_id in doc_ids)
    return built


BUILDERS: dict[str, Callable[..., BuiltSet]] = {
    "ict": build_ict,
    "keyword": build_keyword,
    "title": build_title,
    "spelling": build_spelling,
    "subject": build_subject,
    "description": build_description,
}


def original_chunk_texts(chunks: pl.DataFrame, documents: pl.DataFrame) -> dict[str, str]:
    """chunk_id -> the chunk in its document's original spelling, for chunks where it differs.

    The modern text is the original with letters replaced one for one and word-final ъ dropped
    (clean.modernize_spelling), so modern offsets map to original ones once the dropped signs are
    counted; a document where the two do not align that way is left out (logged)."""
    from archive_encoders.corpus.clean import original_offsets

    out: dict[str, str] = {}
    texts = {d: (t, o) for d, t, o in documents.select("doc_id", "text", "text_original").rows()}
    for doc_id, rows in chunks.group_by("doc_id", maintain_order=True):
        modern, original = texts.get(doc_id[0], (None, None))
        if modern is None or original is None or modern == original:
            continue
        offsets = original_offsets(original, modern)
        if offsets is None:
            log.warning(
                "%s: original and modern spelling do not align; left out of the spelling set", doc_id[0]
            )
            continue
        for cid, start, end in rows.select("chunk_id", "char_start", "char_end").rows():
            piece = original[offsets[start] : offsets[end]].strip()
            if piece != modern[start:end]:
                out[cid] = piece
    return out


def split_corpus(
    split: str,
    chunks: pl.DataFrame,
    documents: pl.DataFrame,
    splits: pl.DataFrame,
    distractors: int,
    rng: np.random.Generator,
) -> SplitCorpus:
    """The split's passages plus up to `distractors` passages of the splits before it."""
    split_of = dict(splits.select("doc_id", "split").rows())
    cluster_of = dict(splits.select("doc_id", "cluster_id").rows())
    titles = dict(documents.select("doc_id", "title").rows())
    frame = chunks.select(
        pl.col("chunk_id").alias("corpus_id"),
        "doc_id",
        pl.col("doc_id").replace_strict(cluster_of, default=pl.col("doc_id")).alias("cluster_id"),
        pl.col("doc_id").replace_strict(titles, default=None, return_dtype=pl.String).alias("title"),
        "text",
        pl.col("doc_id").replace_strict(split_of, default=None, return_dtype=pl.String).alias("_split"),
    )
    members = frame.filter(pl.col("_split") == split)
    if members.is_empty():
        raise ValueError(f"query sets: the {split} split has no chunks")
    others = frame.filter(pl.col("_split").is_in(list(DISTRACTOR_SPLITS[split])))
    others = sample_in_order(others, distractors, rng)
    corpus = pl.concat([members.with_columns(is_member=True), others.with_columns(is_member=False)]).drop(
        "_split"
    )
    docs = documents.with_columns(
        pl.col("doc_id").replace_strict(cluster_of, default=pl.col("doc_id")).alias("cluster_id")
    )
    return SplitCorpus(split, corpus, docs)


def build_query_sets(
    chunks: pl.DataFrame,
    documents: pl.DataFrame,
    splits: pl.DataFrame,
    out_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    languages: Sequence[str],
    seed: int,
    items: pl.DataFrame | None = None,
) -> dict[str, dict[str, int]]:
    """Write every configured set for the val and test splits into `out_dir` (atomically, as one folder).

    settings: config datasets.retrieval (max_queries per set, distractors, sets, subject_max_share).
    items: the item list (items.parquet: identifier, subject, description) the metadata sets read;
    without it they have no query and are left out. Returns {split: {set: number of queries}}."""
    analyzer = Analyzer(languages)
    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out_dir) as tmp:
        for split in HELD_OUT:
            rng = np.random.default_rng([seed, HELD_OUT.index(split)])
            if splits.filter(pl.col("split") == split).is_empty():
                log.warning("the %s split has no documents: no %s query sets", split, split)
                continue
            sc = split_corpus(split, chunks, documents, splits, settings["distractors"], rng)
            folder = tmp / split
            write_parquet(sc.corpus.select(CORPUS_COLUMNS), folder / "corpus.parquet")
            counts[split] = {}
            for name in settings["sets"]:
                built = BUILDERS[name](
                    sc,
                    settings["max_queries"],
                    rng,
                    analyzer=analyzer,
                    chunks=chunks,
                    items=items,
                    subject_max_share=settings.get("subject_max_share", 0.25),
                )
                counts[split][name] = len(built.queries)
                if built.queries:
                    write_built(built, split, folder / name)
                else:
                    log.warning("query set %s/%s: no query could be made; it is left out", split, name)
            log.info(
                "%s: %d passages (%d distractors); queries per set %s",
                split,
                sc.corpus.height,
                sc.corpus.height - sc.members().height,
                counts[split],
            )
    return counts


def write_built(built: BuiltSet, split: str, folder: Path) -> None:
    write_parquet(pl.DataFrame(built.queries, schema=QUERY_SCHEMA, orient="row"), folder / "queries.parquet")
    write_parquet(pl.DataFrame(built.qrels, schema=QRELS_SCHEMA, orient="row"), folder / "qrels.parquet")
    write_parquet(
        pl.DataFrame(list(built.overrides.items()), schema=OVERRIDE_SCHEMA, orient="row"),
        folder / "overrides.parquet",
    )
    write_json(
        folder / "set.json",
        {
            "name": built.kind.name,
            "split": split,
            "level": built.kind.level,
            "generator": built.kind.generator,
            "origin": built.kind.origin,
            "description": built.kind.description,
            "corpus": split,
            "n_queries": len(built.queries),
            "n_qrels": len(built.qrels),
        },
    )


def query_sets(
    corpus: str | os.PathLike,
    splits: str | os.PathLike,
    out_dir: str | os.PathLike,
    retrieval: Mapping[str, Any],
    languages: Sequence[str],
    seed: int,
    items: str | os.PathLike | None = None,
) -> dict[str, dict[str, int]]:
    """The rule's entry point: read the corpus (its manifest) and the item list (paths.ITEMS, for the
    subject and description sets), write the query sets (paths.QUERY_SETS)."""
    from archive_encoders.config import with_defaults
    from archive_encoders.corpus.manifest import scan_chunks, scan_documents

    chunk_columns = ["chunk_id", "doc_id", "chunk_index", "text", "char_start", "char_end"]
    return build_query_sets(
        scan_chunks(corpus).select(chunk_columns).collect(),
        scan_documents(corpus).select("doc_id", "title", "creator", "text", "text_original").collect(),
        pl.read_parquet(splits),
        out_dir,
        with_defaults("datasets.retrieval", retrieval),
        languages,
        seed,
        items=_read_items(items),
    )


def _read_items(path: str | os.PathLike | None) -> pl.DataFrame | None:
    """identifier, subject, description of an items.parquet (an older one without descriptions: null)."""
    if path is None:
        return None
    items = pl.read_parquet(path)
    missing = [c for c in ("subject", "description") if c not in items.columns]
    if missing:
        log.warning("%s has no %s column: those query sets get no query", path, " or ".join(missing))
    return items.select("identifier", *(c for c in ("subject", "description") if c in items.columns))


# --- user-judged sets (config evaluate.retrieval_sets) ---
