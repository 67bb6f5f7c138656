"""BM25 and hybrid fusion: hand-computed rankings, RRF and weighted sums, the weight chosen on val."""

from __future__ import annotations

import numpy as np
import pytest

from archive_encoders.datasets.text_analysis import Analyzer
from archive_encoders.evaluate.fusion import RRF_K, choose_weight, fuse
from archive_encoders.evaluate.lexical import BM25Index
from archive_encoders.evaluate.ranking import DocumentRanker

PASSAGES = [
    "Волга впадает в Каспийское море.",
    "Река Нева течёт из Ладожского озера.",
    "The Volga is the longest river in Europe.",
    "Въ лѣсу родилась ёлочка.",
]


def test_analyzer_stems_per_script_drops_stop_words_and_folds_old_spelling():
    analyzer = Analyzer(["ru", "en"])
    assert analyzer.tokens("The rivers of Europe") == ["river", "europ"]
    assert analyzer.tokens("Въ лѣсу") == analyzer.tokens("в лесу") == ["лес"]
    assert analyzer.tokens("и в на of the") == []
    with pytest.raises(ValueError, match="no stemmer"):
        Analyzer(["xx"])


def test_bm25_finds_the_passage_with_the_query_words_and_returns_nothing_unmatched():
    index = BM25Index(PASSAGES, Analyzer(["ru", "en"]))
    ids = [f"p{i}" for i in range(len(PASSAGES))]
    run = index.run(["q1", "q2", "q3"], ["впадает ли Волга в море", "longest river", "кошка"], ids)
    assert run["q1"][0][0] == "p0"
    assert run["q2"][0][0] == "p2" and all(doc != "p1" for doc, _ in run["q2"])
    assert run["q3"] == []  # no query word in the index: a keyword engine returns nothing
    assert index.run(["q"], ["лѣсъ"], ids)["q"][0][0] == "p3"  # old spelling meets modern


def test_bm25_ranks_documents_by_their_best_passage():
    index = BM25Index(PASSAGES, Analyzer(["ru", "en"]))
    documents = DocumentRanker(["a", "b", "b", "c"])
    run = index.run(["q"], ["Volga Европы river"], [f"p{i}" for i in range(4)], documents)
    assert [doc for doc, _ in run["q"]][0] == "b"  # p2 (doc b) has the most query words
    assert {doc for doc, _ in run["q"]} <= {"a", "b", "c"}


def test_rrf_by_hand():
    dense = {"q": [("a", 0.9), ("b", 0.8), ("c", 0.1)]}
    lexical = {"q": [("b", 12.0), ("d", 3.0)]}
    fused = fuse(dense, lexical, "rrf")["q"]
    expected = {
        "a": 1 / (RRF_K + 1),
        "b": 1 / (RRF_K + 2) + 1 / (RRF_K + 1),
        "c": 1 / (RRF_K + 3),
        "d": 1 / (RRF_K + 2),
    }
    assert [doc for doc, _ in fused] == ["b", "a", "d", "c"]
    for doc, score in fused:
        assert score == pytest.approx(expected[doc])


def test_weighted_fusion_by_hand_with_min_max_scores():
    dense = {"q": [("a", 0.9), ("b", 0.5), ("c", 0.1)]}  # min-max: a 1.0, b 0.5, c 0.0
    lexical = {"q": [("c", 10.0), ("b", 6.0), ("d", 2.0)]}  # min-max: c 1.0, b 0.5, d 0.0
    fused = dict(fuse(dense, lexical, "weighted", weight=0.7)["q"])
    assert fused["a"] == pytest.approx(0.7 * 1.0)
    assert fused["b"] == pytest.approx(0.7 * 0.5 + 0.3 * 0.5)
    assert fused["c"] == pytest.approx(0.3 * 1.0)
    assert fused["d"] == pytest.approx(0.0)
    only_dense = fuse(dense, lexical, "weighted", weight=1.0)["q"]
    assert [doc for doc, _ in only_dense][:3] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="weight"):
        fuse(dense, lexical, "weighted")
    with pytest.raises(ValueError, match="same queries"):
        fuse(dense, {"other": []}, "rrf")


def test_weight_is_chosen_where_the_better_run_gets_it():
    qrels = {f"q{i}": {f"rel{i}": 1} for i in range(6)}
    good = {f"q{i}": [(f"rel{i}", 1.0), ("x", 0.5), ("y", 0.1)] for i in range(6)}
    bad = {f"q{i}": [("x", 5.0), ("y", 4.0), (f"rel{i}", 1.0)] for i in range(6)}
    assert choose_weight(qrels, good, bad) >= 0.6  # the dense run is the good one: most weight on it
    assert choose_weight(qrels, bad, good) <= 0.4
    empty_lexical = {q: [] for q in qrels}  # BM25 matched nothing: fusion must still work
    assert [d for d, _ in fuse(good, empty_lexical, "rrf")["q0"]][0] == "rel0"


def _random_runs(seed: int, n_queries: int = 40):
    """Two noisy runs with untied scores that each lift the relevant documents a little (so a weight
    between 0 and 1 wins), over overlapping documents; some queries have no lexical hit."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, dense, lexical = {}, {}, {}
    for i in range(n_queries):
        q = f"q{i}"
        qrels[q] = {d: int(rng.integers(1, 3)) for d in rng.choice(docs, size=3, replace=False)}
        n_lexical = 0 if i % 7 == 0 else int(rng.integers(5, 20))
        for run, size, scale in ((dense, 25, 1.0), (lexical, n_lexical, 20.0)):
            picked = rng.choice(docs, size=size, replace=False).tolist()
            lift = np.array([0.6 * (d in qrels[q]) for d in picked])
            scores = (rng.random(size) + lift * rng.random(size)) * scale
            run[q] = sorted(zip(picked, scores.tolist(), strict=True), key=lambda x: -x[1])
    return qrels, dense, lexical


def _ranx_run(run, name):
    import ranx

    return ranx.Run({q: dict(hits) or {"\x00none": 0.0} for q, hits in run.items()}, name=name)


def _ranx_ranked(run):
    return {
        q: [(d, s) for d, s in sorted(docs.items(), key=lambda x: (-x[1], x[0])) if d != "\x00none"]
        for q, docs in run.to_dict().items()
    }


@pytest.mark.parametrize("seed", [1, 3, 5])  # chosen weights 0.8, 0.4, 0.6
def test_fusion_and_the_chosen_weight_equal_ranx(seed):
    import ranx

    qrels, dense, lexical = _random_runs(seed)
    runs = [_ranx_run(dense, "dense"), _ranx_run(lexical, "bm25")]
    expected = {
        "rrf": _ranx_ranked(ranx.fuse(runs, method="rrf", params={"k": RRF_K})),
        "weighted": _ranx_ranked(
            ranx.fuse(runs, norm="min-max", method="wsum", params={"weights": [0.3, 0.7]})
        ),
    }
    for method, want in expected.items():
        got = fuse(dense, lexical, method, weight=0.3)
        assert set(got) == set(want)
        for q in want:
            assert [d for d, _ in got[q]] == [d for d, _ in want[q]], (method, q)
            assert [s for _, s in got[q]] == pytest.approx([s for _, s in want[q]])
    best = ranx.optimize_fusion(
        ranx.Qrels(qrels),
        runs,
        norm="min-max",
        method="wsum",
        metric="ndcg@10",
        step=0.1,
        show_progress=False,
    )
    assert choose_weight(qrels, dense, lexical) == pytest.approx(best["weights"][0])
