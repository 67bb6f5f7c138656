"""Training data: cluster-level splits, TSDAE noise, mined triplets and the held-out retrieval set."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from synthetic_corpus import HARD_NEGATIVES, SEED, SPLIT, build_datasets, tiny_spec

from archive_encoders import training_data as td
from archive_encoders.queries import inverse_cloze, sentences

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
    first = td.assign_splits(documents, **SPLIT, seed=SEED)
    assert first.equals(td.assign_splits(documents, **SPLIT, seed=SEED))
    others = [td.assign_splits(documents, **SPLIT, seed=s)["split"] for s in range(1, 6)]
    assert any(not o.equals(first["split"]) for o in others)


def test_split_of_a_document_without_cluster_is_its_own():
    documents = pl.DataFrame({"doc_id": ["a", "b", "c", "d"], "cluster_id": [None, "x", "x", None]})
    splits = td.assign_splits(documents, val=0.0, test=0.25, seed=1)
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
    noisy = td.delete_words(text, 0.6, np.random.default_rng(0))
    kept = noisy.split()
    assert 0.55 < 1 - len(kept) / 2000 < 0.65
    positions = [int(w[1:]) for w in kept]
    assert positions == sorted(positions)  # deletion only: order kept
    assert noisy == td.delete_words(text, 0.6, np.random.default_rng(0))
    assert td.delete_words(text, 0.0, np.random.default_rng(0)) == text
    assert len(td.delete_words(text, 1.0, np.random.default_rng(0)).split()) == 1


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


def test_inverse_cloze_cuts_the_sentence_out():
    text = "Alpha beta gamma delta epsilon zeta. Eta theta iota kappa lambda mu. Nu xi omicron pi rho sigma."
    query, rest = inverse_cloze(text, np.random.default_rng(0))
    assert query in _sentences(text) and query not in rest
    assert len(rest.split()) + len(query.split()) == len(text.split())
    assert inverse_cloze("Only one sentence here at all.", np.random.default_rng(0)) is None


def test_triplets_shape_kinds_and_negatives_off_cluster(data):
    f = _frames(data)
    triplets = f["triplets"]
    assert triplets.columns == ["anchor", "positive", "negative", "kind", "doc_id"]
    assert set(triplets["kind"]) == set(td.KINDS)
    assert triplets.height == triplets.unique(["anchor", "positive"]).height * HARD_NEGATIVES["num_negatives"]
    cluster_of_doc = dict(f["splits"].select("doc_id", "cluster_id").iter_rows())
    cluster_of_sentence = {
        s: cluster_of_doc[d]
        for d, text in f["documents"].select("doc_id", "text").iter_rows()
        for s in _sentences(text)
    }
    for anchor, positive, negative, _, doc_id in triplets.iter_rows():
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
    """Without groups to mask, our miner picks exactly the negatives sentence-transformers' function picks."""
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
    theirs = mine_hard_negatives(
        Dataset.from_dict({"anchor": anchors, "positive": positives}), model, corpus=corpus,
        sampling_strategy="top", output_format="triplet", verbose=False, **window,
    )  # fmt: skip
    expected = {a: [] for a in anchors}
    for row in theirs:
        expected[row["anchor"]].append(row["negative"])
    assert dict(zip(anchors, ours, strict=True)) == expected
    assert any(expected.values())


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


def test_balanced_take_mixes_kinds():
    frame = pl.DataFrame(
        {"kind": ["inverse_cloze"] * 50 + ["title"] * 3 + ["neighbour"] * 50, "x": range(103)}
    )
    taken = td.balanced_take(frame, 20, np.random.default_rng(0))
    # round robin: three of each until the titles run out, then the other two alternate
    assert dict(taken["kind"].value_counts().iter_rows()) == {"title": 3, "inverse_cloze": 9, "neighbour": 8}


# --- held-out query sets ---


def test_query_sets_are_consistent_and_held_out(data):
    from archive_encoders import querysets as qs

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

    from archive_encoders import querysets as qs
    from archive_encoders.config import ModelSpec
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
