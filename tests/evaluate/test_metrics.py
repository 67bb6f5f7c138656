"""Retrieval metrics against hand-computed values, ranx and sentence-transformers' evaluator; STS."""

from __future__ import annotations

from math import log2

import numpy as np
import pytest

from archive_encoders.evaluate.metrics import (
    RETRIEVAL_METRICS,
    mean_random_pair_cosine,
    per_query_scores,
    sts_spearman,
)
from archive_encoders.vectors import spearman


def ranked(*doc_ids: str) -> list[tuple[str, float]]:
    """A run row from a ranking, best first (scores strictly decreasing)."""
    return [(d, float(len(doc_ids) - i)) for i, d in enumerate(doc_ids)]


# q1: graded qrels, relevant docs at ranks 2 (grade 2) and 4 (grade 1).
# q2: binary, the single relevant doc first.
# q3: binary, two relevant docs at ranks 3 and 12 (inside the top 100, outside the top 10).
QRELS = {
    "q1": {"d1": 2, "d2": 1, "d3": 0},  # grade 0: judged, not relevant
    "q2": {"d5": 1},
    "q3": {"d6": 1, "d7": 1},
}
RUN = {
    "q1": ranked("d3", "d1", "d4", "d2"),
    "q2": ranked("d5", "d1", "d2"),
    "q3": ranked("x1", "x2", "d6", *[f"x{i}" for i in range(3, 11)], "d7"),
}

# The hand computation. DCG = sum(grade_i / log2(rank_i + 1)) (linear gain); IDCG: the ideal ordering.
HAND = {
    "q1": {
        "ndcg@1": 0.0,  # rank 1 is d3 (grade 0)
        "ndcg@10": (2 / log2(3) + 1 / log2(5)) / (2 / log2(2) + 1 / log2(3)),
        "mrr@10": 1 / 2,
        "recall@10": 2 / 2,
        "recall@100": 2 / 2,
        "map@100": (1 / 2 + 2 / 4) / 2,  # precision at each relevant rank, over the 2 relevant docs
    },
    "q2": {m: 1.0 for m in RETRIEVAL_METRICS},
    "q3": {
        "ndcg@1": 0.0,
        "ndcg@10": (1 / log2(4)) / (1 / log2(2) + 1 / log2(3)),  # d7 at rank 12 is past the cut-off
        "mrr@10": 1 / 3,
        "recall@10": 1 / 2,
        "recall@100": 2 / 2,
        "map@100": (1 / 3 + 2 / 12) / 2,
    },
}


def test_per_query_scores_match_hand_computation():
    query_ids, scores = per_query_scores(QRELS, RUN)
    assert query_ids == ["q1", "q2", "q3"]
    for metric in RETRIEVAL_METRICS:
        expected = [HAND[q][metric] for q in query_ids]
        np.testing.assert_allclose(scores[metric], expected, rtol=1e-9, err_msg=metric)
    # Spot-check the arithmetic itself once, so a wrong hand formula cannot hide.
    assert HAND["q1"]["ndcg@10"] == pytest.approx(0.64332, abs=1e-5)
    assert HAND["q3"]["ndcg@10"] == pytest.approx(0.30657, abs=1e-5)


def test_perfect_ranking_gives_one():
    qrels = {f"q{i}": {f"d{i}": 1, f"e{i}": 2} for i in range(20)}
    run = {f"q{i}": ranked(f"e{i}", f"d{i}", "noise") for i in range(20)}
    _, scores = per_query_scores(qrels, run)
    for metric, values in scores.items():
        assert values.tolist() == [1.0] * 20, metric


def test_unanswered_query_scores_zero_and_unjudged_query_is_refused():
    ids, scores = per_query_scores({"q1": {"d": 1}, "q2": {"d": 1}}, {"q1": ranked("d")})
    assert ids == ["q1", "q2"] and scores["ndcg@10"].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="do not judge"):
        per_query_scores({"q1": {"d": 1}}, {"q1": ranked("d"), "q2": ranked("d")})


def test_matches_ranx_on_random_graded_runs():
    """ranx is the reference these replaced in the evaluation jobs (it compiles its kernels per process)."""
    import ranx

    rng = np.random.default_rng(3)
    qrels, run = {}, {}
    for q in range(40):
        docs = [f"d{j}" for j in rng.permutation(300)[:150]]
        qrels[f"q{q}"] = {d: int(rng.integers(1, 4)) for d in rng.choice(docs, size=int(rng.integers(1, 12)))}
        qrels[f"q{q}"]["zero"] = 0  # judged, not relevant
        run[f"q{q}"] = ranked(*docs[:100])
    ids, ours = per_query_scores(qrels, run)
    theirs = ranx.evaluate(
        ranx.Qrels(qrels),
        ranx.Run({q: dict(hits) for q, hits in run.items()}),
        list(RETRIEVAL_METRICS),
        return_mean=False,
        threads=1,
    )
    assert ids == sorted(ids, key=lambda q: int(q[1:]))
    order = np.argsort(ids)  # ranx orders its queries by id
    for metric in RETRIEVAL_METRICS:
        np.testing.assert_allclose(ours[metric][order], theirs[metric], rtol=1e-9, err_msg=metric)


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="precision@5"):
        per_query_scores({"q": {"d": 1}}, {"q": ranked("d")}, ["precision@5"])


def test_metrics_agree_with_sentence_transformers_evaluator():
    """Binary qrels, no ties, <= 100 relevant per query: every convention of the two coincides."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    rng = np.random.default_rng(7)
    corpus = {f"c{i}": f"passage {i}" for i in range(150)}
    queries = {f"q{i}": f"query {i}" for i in range(30)}
    relevant = {q: set(rng.choice(list(corpus), size=rng.integers(1, 4), replace=False)) for q in queries}
    scores = {q: dict(zip(corpus, rng.permutation(len(corpus)).astype(float), strict=True)) for q in queries}

    evaluator = InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        mrr_at_k=[10],
        ndcg_at_k=[1, 10],
        precision_recall_at_k=[10, 100],
        map_at_k=[100],
        accuracy_at_k=[1],
        write_csv=False,
    )
    results = [[{"corpus_id": c, "score": s} for c, s in scores[q].items()] for q in evaluator.queries_ids]
    theirs = evaluator.compute_metrics(results)

    run = {q: sorted(scores[q].items(), key=lambda kv: -kv[1])[:100] for q in queries}
    ids, per_query = per_query_scores({q: dict.fromkeys(relevant[q], 1) for q in queries}, run)
    ours = {m: {"value": float(v.mean())} for m, v in per_query.items()}
    expected = {
        "ndcg@1": theirs["ndcg@k"][1],
        "ndcg@10": theirs["ndcg@k"][10],
        "mrr@10": theirs["mrr@k"][10],
        "recall@10": theirs["recall@k"][10],
        "recall@100": theirs["recall@k"][100],
        "map@100": theirs["map@k"][100],
    }
    for metric, value in expected.items():
        assert ours[metric]["value"] == pytest.approx(value, rel=1e-9), metric


def test_sts_spearman_follows_the_ranking_of_cosines():
    angles = np.array([0.1, 0.5, 0.9, 1.3])
    emb1 = np.tile([1.0, 0.0], (4, 1))
    emb2 = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 3.0  # unnormalised on purpose
    assert sts_spearman(emb1, emb2, [5.0, 3.0, 2.0, 0.0]) == pytest.approx(1.0)
    assert sts_spearman(emb1, emb2, [0.0, 2.0, 3.0, 5.0]) == pytest.approx(-1.0)


def test_random_pair_cosine_is_an_anisotropy_diagnostic():
    assert mean_random_pair_cosine(np.tile([0.6, 0.8], (10, 1)), seed=0) == pytest.approx(1.0)
    assert mean_random_pair_cosine(np.eye(10), seed=0) == pytest.approx(0.0)  # distinct pairs only
    assert mean_random_pair_cosine(np.eye(1), seed=0) is None


def test_sts_spearman_is_none_when_undefined():
    emb = np.eye(3)
    assert sts_spearman(emb, emb, [1.0, 2.0, 3.0]) is None  # every cosine is 1: no ranking to compare
    assert sts_spearman(emb, np.roll(emb, 1, axis=0) + emb, [2.0, 2.0, 2.0]) is None


def test_spearman_hand_values_and_undefined_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = (0, 0, 1, -1): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)
    assert spearman([1], [2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None
