"""Training data: cluster-level splits, TSDAE noise, training pairs of every query kind, mined triplets; the
held-out query sets."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from support.synthetic_corpus import HARD_NEGATIVES, SEED, SPLIT, build_datasets, tiny_spec

from archive_encoders.datasets import generators as gen
from archive_encoders.datasets import triplets as td
from archive_encoders.datasets import tsdae
from archive_encoders.datasets.generators import inverse_cloze, sentences
from archive_encoders.datasets.splits import assign_splits
from archive_encoders.datasets.text_analysis import Analyzer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model):
    return build_datasets(tmp_path_factory.getbasetemp() / "synthetic", tiny_model)


def _frames(data):
    return {
        name: pl.read_parquet(data / f"{name}.parquet")
        for name in ("documents", "chunks", "splits", "tsdae", "triplets")
    }


def _sentences(text: str) -> list[str]:
    return sentences(text)


# --- splits ---


def test_splits_keep_every_cluster_in_one_split(data):
    f = _frames(data)
    splits = f["splits"]
    assert splits.columns == ["doc_id", "cluster_id", "split"]
    assert sorted(splits["doc_id"]) == sorted(f["documents"]["doc_id"])
    per_cluster = splits.group_by("cluster_id").agg(pl.col("split").n_unique())
    assert per_cluster["split"].max() == 1
    sizes = dict(splits["split"].value_counts().iter_rows())
    assert set(sizes) == {"train", "val", "test"}
    assert sizes["train"] > sizes["test"] >= sizes["val"]
    # the leak this guards against is really there: a test document has a second scan
    test_clusters = splits.filter(pl.col("split") == "test").group_by("cluster_id").len()
    assert test_clusters["len"].max() >= 2


def test_splits_are_deterministic_per_seed(data):
    documents = pl.read_parquet(data / "documents.parquet")
    first = assign_splits(documents, **SPLIT, seed=SEED)
    assert first.equals(assign_splits(documents, **SPLIT, seed=SEED))
    others = [assign_splits(documents, **SPLIT, seed=s)["split"] for s in range(1, 6)]
    assert any(not o.equals(first["split"]) for o in others)


def test_test_items_pin_documents_and_their_clusters_to_test():
    documents = pl.DataFrame(
        {
            "doc_id": [f"vol09_{i}" for i in range(6)] + [f"vol11_{i}" for i in range(3)] + ["other"],
            "cluster_id": [None] * 6
            + [None, None, "vol11_1"]
            + ["vol09_2"],  # "other" is a rescan of vol09_2
        }
    )
    splits = assign_splits(documents, val=0.2, test=0.2, seed=1, test_items=["vol11_*", "other"])
    split_of = dict(splits.select("doc_id", "split").rows())
    assert {split_of[f"vol11_{i}"] for i in range(3)} == {"test"}
    assert split_of["other"] == split_of["vol09_2"] == "test"  # a pinned document takes its cluster along
    counts = dict(splits["split"].value_counts().rows())
    assert counts["test"] == 5 and counts["val"] == 2 and counts["train"] == 3  # the ratios fill the rest
    with pytest.raises(ValueError, match="datasets.split.test_items"):
        assign_splits(documents, val=0.2, test=0.2, seed=1, test_items=["vol12_*"])


def test_split_of_a_document_without_cluster_is_its_own():
    documents = pl.DataFrame({"doc_id": ["a", "b", "c", "d"], "cluster_id": [None, "x", "x", None]})
    splits = assign_splits(documents, val=0.0, test=0.25, seed=1)
    assert splits.filter(pl.col("doc_id") == "a")["cluster_id"][0] == "a"
    assert splits.filter(pl.col("cluster_id") == "x")["split"].n_unique() == 1


def test_no_test_text_reaches_the_training_data(data):
    f = _frames(data)
    test_docs = set(f["splits"].filter(pl.col("split") == "test")["doc_id"])
    test_sentences = {
        s
        for text in f["documents"].filter(pl.col("doc_id").is_in(list(test_docs)))["text"]
        for s in _sentences(text)
    }
    train_texts = [
        *f["triplets"]["anchor"],
        *f["triplets"]["positive"],
        *f["triplets"]["negative"],
        *f["tsdae"]["text"],
    ]
    assert not [t for t in train_texts if set(_sentences(t)) & test_sentences]
    test_titles = set(f["documents"].filter(pl.col("doc_id").is_in(list(test_docs)))["title"])
    assert not set(f["triplets"]["anchor"]) & test_titles
    assert not set(f["triplets"]["doc_id"]) & test_docs
    train_docs = set(f["splits"].filter(pl.col("split") == "train")["doc_id"])
    assert set(f["triplets"]["doc_id"]) <= train_docs


# --- TSDAE ---


def test_word_deletion_ratio_and_determinism():
    text = " ".join(f"w{i}" for i in range(2000))
    noisy = tsdae.delete_words(text, 0.6, np.random.default_rng(0))
    kept = noisy.split()
    assert 0.55 < 1 - len(kept) / 2000 < 0.65
    positions = [int(w[1:]) for w in kept]
    assert positions == sorted(positions)  # deletion only: order kept
    assert noisy == tsdae.delete_words(text, 0.6, np.random.default_rng(0))
    assert tsdae.delete_words(text, 0.0, np.random.default_rng(0)) == text
    assert len(tsdae.delete_words(text, 1.0, np.random.default_rng(0)).split()) == 1


def test_tsdae_pairs_come_from_train_chunks(data):
    f = _frames(data)
    assert f["tsdae"].columns == ["noisy", "text"]
    train_docs = f["splits"].filter(pl.col("split") == "train")["doc_id"].to_list()
    train_chunks = f["chunks"].filter(pl.col("doc_id").is_in(train_docs))["text"]
    assert set(f["tsdae"]["text"]) <= set(train_chunks)
    assert f["tsdae"].height == train_chunks.len()
    for noisy, text in f["tsdae"].head(5).iter_rows():
        assert len(noisy.split()) < len(text.split())


# --- pseudo-queries and triplets ---


def test_question_is_a_short_span_of_one_sentence_behind_an_interrogative():
    corpus = [
        "В 1755 году в Москве по проекту Ломоносова был основан университет. Студенты слушали лекции.",
        "Университет в Москве открыл две гимназии. Ломоносов писал оды.",
        "Профессора университета читали лекции по-латыни. Гимназии готовили студентов.",
        "Ломоносов родился в Холмогорах. Москва приняла его студентом.",
    ]
    keywords = gen.KeywordQueries(corpus, ["a", "b", "c", "d"], Analyzer(["ru"]))
    rng = np.random.default_rng(0)
    first = corpus[0].split(". ")[0]
    made = [gen._question_from(first, keywords)]
    made += [gen.question(corpus[0], keywords, rng) for _ in range(5)]
    for q in made:
        assert q and q.endswith("?") and q == q.lower()
        asks, *span = q[:-1].split()
        assert asks in ("когда", "что") and 2 <= len(span) <= gen.MAX_QUESTION_SPAN
        assert "1755" not in q  # the year is the answer, not part of the question
    # the span of the first sentence: its words in order, between its two most distinctive words
    asks, *span = made[0][:-1].split()
    words = first.lower().replace(".", "").split()
    start = words.index(span[0])
    assert words[start : start + len(span)] == span and asks == "когда"  # the sentence holds a year
    assert gen.question("Одно предложение.", keywords, rng) is None


def test_kind_quotas_share_by_weight_and_pass_on_what_a_kind_lacks():
    # 100 rows by weights 1:1:2 = 25/25/50; b has only 10, its 15 go to a and c by 1:2 = 30/60
    quotas = td.kind_quotas({"a": 100, "b": 10, "c": 100}, 100, {"a": 1, "b": 1, "c": 2})
    assert quotas == {"a": 30, "b": 10, "c": 60}
    assert td.kind_quotas({"a": 5, "b": 3}, 100, {"a": 1, "b": 1}) == {"a": 5, "b": 3}
    assert td.kind_quotas({"a": 50, "b": 50}, 10, {"a": 1, "b": 0}) == {"a": 10, "b": 0}
    assert sum(td.kind_quotas({"a": 9, "b": 9, "c": 9}, 10, {"a": 1, "b": 1, "c": 1}).values()) == 10
    frame = pl.DataFrame({"kind": ["a"] * 100 + ["b"] * 10 + ["c"] * 100, "x": range(210)})
    taken = td.weighted_take(frame, 100, {"a": 1, "b": 1, "c": 2}, np.random.default_rng(0))
    assert dict(taken["kind"].value_counts().rows()) == {"a": 30, "b": 10, "c": 60}
    assert taken["x"].is_sorted()


def test_inverse_cloze_cuts_the_sentence_out():
    text = "Alpha beta gamma delta epsilon zeta. Eta theta iota kappa lambda mu. Nu xi omicron pi rho sigma."
    query, rest = inverse_cloze(text, np.random.default_rng(0))
    assert query in _sentences(text) and query not in rest
    assert len(rest.split()) + len(query.split()) == len(text.split())
    assert inverse_cloze("Only one sentence here at all.", np.random.default_rng(0)) is None


def test_triplets_shape_kinds_and_negatives_off_cluster(data):
    f = _frames(data)
    triplets = f["triplets"]
    assert triplets.schema == td.TRIPLET_SCHEMA
    assert set(triplets["kind"]) == set(td.KINDS)
    assert triplets.height == triplets.unique(["anchor", "positive"]).height * HARD_NEGATIVES["num_negatives"]
    assert triplets.filter(pl.col("kind") == "title")["chunk_index"].is_null().all()
    assert triplets.filter(pl.col("kind") != "title")["chunk_index"].is_not_null().all()
    cluster_of_doc = dict(f["splits"].select("doc_id", "cluster_id").iter_rows())
    cluster_of_sentence = {
        s: cluster_of_doc[d]
        for d, text in f["documents"].select("doc_id", "text").iter_rows()
        for s in _sentences(text)
    }
    for anchor, positive, negative, _, doc_id, *_ in triplets.iter_rows():
        assert negative not in (anchor, positive)
        negative_clusters = {cluster_of_sentence[s] for s in _sentences(negative)}
        assert cluster_of_doc[doc_id] not in negative_clusters


def test_neighbour_positive_drops_the_overlap(data):
    f = _frames(data)
    chunks = f["chunks"].sort("doc_id", "chunk_index")
    neighbours = f["triplets"].filter(pl.col("kind") == "neighbour")
    next_text = dict(zip(chunks["text"][:-1], chunks["text"][1:], strict=True))
    for anchor, positive in neighbours.select("anchor", "positive").head(10).iter_rows():
        following = next_text[anchor]
        assert following.endswith(positive) and following != positive
        assert _sentences(anchor)[-1] not in positive  # the shared sentence is not in both


@pytest.fixture(scope="module")
def minilm(minilm_path):
    from archive_encoders.config import ModelSpec
    from archive_encoders.models import load_sentence_transformer

    return load_sentence_transformer(ModelSpec(name="minilm", path=str(minilm_path), max_seq_length=64))


@pytest.mark.parametrize("margin", [None, 0.05])
def test_mining_selects_what_mine_hard_negatives_selects(data, minilm, margin):
    """Without groups to mask, our miner picks the negatives sentence-transformers' function picks: the
    same with no margin; with one, what it picks when it searches the whole corpus (ours ranks only the
    candidates below the positive's margin, so its window is never filled by what the margin drops)."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    f = _frames(data)
    pairs = f["triplets"].unique("anchor", keep="first", maintain_order=True).head(12)
    anchors, positives = pairs["anchor"].to_list(), pairs["positive"].to_list()
    corpus = list(dict.fromkeys([*f["chunks"]["text"].head(60), *positives]))
    model = minilm
    window = {"num_negatives": 3, "range_min": 2, "range_max": 10, "relative_margin": margin}
    ours = td.mine_negatives(
        anchors, positives, [f"p{i}" for i in range(12)], corpus, [{"corpus"}] * len(corpus), model, window
    )
    deep = {**window, "range_max": window["range_max"] if margin is None else len(corpus) - 1}
    theirs = mine_hard_negatives(
        Dataset.from_dict({"anchor": anchors, "positive": positives}), model, corpus=corpus,
        sampling_strategy="top", output_format="triplet", verbose=False, **deep,
    )  # fmt: skip
    expected = {a: [] for a in anchors}
    for row in theirs:
        expected[row["anchor"]].append(row["negative"])
    assert dict(zip(anchors, ours, strict=True)) == expected
    assert any(expected.values())


def test_mining_finds_negatives_below_a_positive_that_is_not_the_top_hit(data, minilm):
    """On this corpus (eight topics, several books each) many chunks outscore most anchors' positive, so a
    window over the top range_max (sentence-transformers' mine_hard_negatives) holds nothing below the
    positive's margin. Ours ranks below the margin and finds mined negatives there."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    f = _frames(data)
    pairs = f["triplets"].unique("anchor", keep="first", maintain_order=True).head(30)
    anchors, positives = pairs["anchor"].to_list(), pairs["positive"].to_list()
    chunks = f["chunks"].join(f["splits"], on="doc_id")
    corpus = list(dict.fromkeys([*chunks["text"], *positives]))
    model = minilm
    window = {"num_negatives": 2, "range_min": 1, "range_max": 5, "relative_margin": 0.05}

    q = model.encode(anchors, normalize_embeddings=True)
    d = model.encode(corpus, normalize_embeddings=True)
    scores = q @ d.T
    pos = np.array([scores[i, corpus.index(p)] for i, p in enumerate(positives)])
    outscoring = (scores > pos[:, None]).sum(axis=1)
    assert (outscoring > window["range_max"]).mean() > 0.5  # the case real OCR data shows

    mined = td.mine_negatives(anchors, positives, [f"p{i}" for i in range(30)], corpus, [{"c"}] * len(corpus),
                              model, window)  # fmt: skip
    threshold = pos - np.abs(pos) * window["relative_margin"]
    for i, negatives in enumerate(mined):
        below = sorted(
            (s for s, text in zip(scores[i], corpus, strict=True) if s <= threshold[i]), reverse=True
        )
        got = [scores[i, corpus.index(n)] for n in negatives]
        # the 2nd and 3rd best below the margin (range_min = 1, num_negatives = 2), up to float noise
        np.testing.assert_allclose(got, below[1:3], atol=1e-4)
    found = [len(m) == 2 for m, n in zip(mined, outscoring, strict=True) if n > window["range_max"]]
    assert sum(found) >= 10
    theirs = mine_hard_negatives(
        Dataset.from_dict({"anchor": anchors, "positive": positives}), model, corpus=corpus,
        sampling_strategy="top", output_format="triplet", verbose=False, **window,
    )  # fmt: skip
    assert len(theirs) < sum(map(len, mined)) / 2


def test_document_level_anchors_skip_the_margin(data, minilm):
    """A title query's positive is one chunk of a relevant book (the book is masked): no margin below it."""
    f = _frames(data)
    pairs = f["triplets"].unique("anchor", keep="first", maintain_order=True).head(8)
    anchors, positives = pairs["anchor"].to_list(), pairs["positive"].to_list()
    corpus = list(dict.fromkeys([*f["chunks"]["text"].head(60), *positives]))
    groups, owners = [f"p{i}" for i in range(8)], [{"c"}] * len(corpus)
    window = {"num_negatives": 2, "range_min": 0, "range_max": 10}
    with_margin = td.mine_negatives(
        anchors, positives, groups, corpus, owners, minilm, {**window, "relative_margin": 0.05}
    )
    without = td.mine_negatives(
        anchors, positives, groups, corpus, owners, minilm, {**window, "relative_margin": None}
    )
    levels = [i % 2 == 0 for i in range(8)]
    mixed = td.mine_negatives(
        anchors,
        positives,
        groups,
        corpus,
        owners,
        minilm,
        {**window, "relative_margin": 0.05},
        document_level=levels,
    )
    assert with_margin != without  # the margin does drop candidates here
    assert mixed == [w if level else m for w, m, level in zip(without, with_margin, levels, strict=True)]


def test_mined_triplets_record_their_random_share_per_kind(data):
    import json

    meta = json.loads((data / "triplets.json").read_text())
    triplets = pl.read_parquet(data / "triplets.parquet")
    assert meta["rows"] == triplets.height and meta["pairs"] == triplets.unique(["anchor", "positive"]).height
    assert set(meta["kinds"]) == set(td.KINDS) and meta["random_share"] == 0.0
    for kind, stats in meta["kinds"].items():
        assert stats["pairs"] == triplets.filter(pl.col("kind") == kind).height
        assert stats["random"] == 0 and stats["mined"] == stats["pairs"]
    assert meta["source_chunks"] > 0 and meta["corpus_chunks"] >= meta["source_chunks"]
    assert meta["encode_s"] > 0 and meta["hardware"]["device"] == "cpu"


def test_mining_fails_when_too_many_negatives_are_random(tmp_path, data, tiny_model):
    """A window that cannot hold enough candidates (range_min beyond the pool) makes every negative
    random: the job fails, names the setting to change, and writes no triplets."""
    with pytest.raises(ValueError, match=r"max_random_share.*range_max") as error:
        settings = td.MiningSettings(
            tiny_spec(tiny_model),
            {"range_min": 500, "range_max": 501},
            max_pairs=40,
            seed=SEED,
            device="cpu",
            languages=["en"],
        )
        td.mine_triplets(
            data / "corpus.json",
            data / "splits.parquet",
            tmp_path / "t.parquet",
            settings,
            tmp_path / "t.json",
        )
    assert "datasets.hard_negatives" in str(error.value)
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "t.json").exists()
    with pytest.raises(ValueError, match="keyword"):
        td.check_random_share({"keyword": 0.5, "title": 0.0}, 0.1)
    td.check_random_share({"keyword": 0.1}, 0.1)  # at the limit is fine


def test_mining_masks_the_anchors_own_cluster(data, tiny_model):
    from archive_encoders.config import ModelSpec
    from archive_encoders.models import load_sentence_transformer

    f = _frames(data)
    chunks = f["chunks"].join(f["splits"], on="doc_id")
    anchors = chunks["text"].head(10).to_list()
    groups = chunks["cluster_id"].head(10).to_list()
    corpus = chunks["text"].to_list()
    model = load_sentence_transformer(ModelSpec.from_config(tiny_spec(tiny_model)))
    window = {"num_negatives": 5, "range_min": 0, "range_max": 30, "relative_margin": None}
    mined = td.mine_negatives(
        anchors, anchors, groups, corpus, [{c} for c in chunks["cluster_id"]], model, window
    )
    cluster_of = dict(zip(corpus, chunks["cluster_id"], strict=False))
    for group, negatives in zip(groups, mined, strict=True):
        assert len(negatives) == 5
        assert group not in {cluster_of[n] for n in negatives}


# --- held-out query sets ---


def test_query_sets_are_consistent_and_held_out(data):
    from archive_encoders.datasets import querysets as qs

    f = _frames(data)
    split_of = dict(f["splits"].select("doc_id", "split").iter_rows())
    for split in ("val", "test"):
        corpus, sets = qs.read_split(data / "querysets", split)
        if not sets:
            continue
        assert corpus["corpus_id"].is_unique().all()
        members = corpus.filter(pl.col("doc_id").replace_strict(split_of) == split)
        assert corpus.height - members.height == min(50, corpus.height - members.height)  # distractors
        for query_set in sets.values():
            assert query_set.queries["query_id"].is_unique().all()
            judged = {c for docs in query_set.qrels.values() for c in docs}
            ids = set(corpus["doc_id"]) if query_set.level == qs.DOCUMENT_LEVEL else set(corpus["corpus_id"])
            assert judged <= ids
            relevant_docs = (
                judged
                if query_set.level == qs.DOCUMENT_LEVEL
                else set(corpus.filter(pl.col("corpus_id").is_in(list(judged)))["doc_id"])
            )
            assert {split_of[d] for d in relevant_docs} == {split}  # never a training document


def test_query_sets_feed_the_ir_evaluator(data, tiny_model):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from archive_encoders.config import ModelSpec
    from archive_encoders.datasets import querysets as qs
    from archive_encoders.models import load_sentence_transformer

    corpus, sets = qs.read_split(data / "querysets", "test")
    queries, passages, relevant = sets["ict"].ir_inputs(
        corpus, query_prefix="query: ", passage_prefix="passage: "
    )
    assert all(t.startswith("query: ") for t in queries.values())
    evaluator = InformationRetrievalEvaluator(
        queries, passages, relevant, name="held-out", show_progress_bar=False
    )
    scores = evaluator(load_sentence_transformer(ModelSpec.from_config(tiny_spec(tiny_model))))
    assert 0 <= scores["held-out_cosine_ndcg@10"] <= 1
