"""The report's judged-set section, from the judging.json a real export writes (numbers by hand)."""

from __future__ import annotations

import pytest
from support.judging_helpers import JUDGED, write_pool

from archive_encoders.judging.export import export_judgments
from archive_encoders.judging.pool import pool_queries, read_pool
from archive_encoders.judging.store import JudgmentStore
from archive_encoders.report.judged import judging_lines, kappa_band


@pytest.fixture()
def record(tmp_path):
    pool, corpus = write_pool(tmp_path / "in")
    store = JudgmentStore(tmp_path / "j.sqlite")
    store.add_queries(pool_queries(read_pool(pool)).items())
    store.add_queries([("q2", "typed again")], source="page")  # q2 already known: stays a file query
    for row in JUDGED:
        store.judge(*row)
    return export_judgments(store.path, pool, corpus, tmp_path / "out", min_queries=2)


def test_counts_depth_and_coverage_by_hand(record):
    assert (record["pool_depth"], record["n_pooled_systems"], record["n_queries_typed"]) == (3, 3, 0)
    lines = judging_lines(record)
    assert lines[0].startswith(
        "3 queries judged (2 with a relevant passage, the ones scored; 0 typed on the judging page) "
        "by 3 annotator(s), 14 grades. Pool: the top 3 of each of 3 retrievers"
    )
    assert "3 relevant, 3 partly, 2 not" in lines[0]  # merged: p1 p2 p7 / p3 p4 p6 / p5 p9
    # judged@10: q1 fully judged; q2 misses p8; q3 has only p9 judged
    # bm25 (1 + 2/3 + 1/3) / 3 = 0.67; dense (1 + 2/3 + 1/2) / 3 = 0.72; hybrid as bm25
    table = [line for line in lines if line.startswith("| `")]
    assert table == [
        "| `bm25` | 0.67 |  |",
        "| `minilm/lora/onnx-int8/hybrid-weighted` | 0.67 |  |",
        "| `minilm/lora/onnx-int8/dense` | 0.72 |  |",
    ]


def test_kappa_by_hand(record):
    # ann / bob on 5 passages: agree on 2 (p_o 0.4); ann 3-1-1 and bob 1-1-3 over grades 0-1-2, so
    # p_e = (3*1 + 1*1 + 1*3) / 25 = 0.28; kappa = (0.4 - 0.28) / 0.72 = 0.1667
    assert record["kappa"]["ann / bob"] == {"kappa": 0.1667, "n_pairs": 5}
    assert "| ann / bob | 0.17 | 5 | slight |" in judging_lines(record)


def test_a_mostly_unjudged_retriever_is_flagged_and_one_annotator_gets_advice():
    record = {
        "n_queries": 40,
        "n_queries_with_relevant": 35,
        "n_queries_typed": 4,
        "annotators": ["ann"],
        "n_judgments": 400,
        "pool_depth": 10,
        "n_pooled_systems": 2,
        "grades": {"0": 300, "1": 60, "2": 40},
        "merge_rule": "mean",
        "judged_at_10": {
            "bm25": {"judged": 0.9, "flagged": False},
            "x/y/z/dense": {"judged": 0.3, "flagged": True},
        },
        "kappa": {},
    }
    lines = judging_lines(record)
    assert "| `x/y/z/dense` | 0.30 | **mostly unjudged**: its `judged` score is a lower bound |" in lines
    assert lines.index(
        "| `x/y/z/dense` | 0.30 | **mostly unjudged**: its `judged` score is a lower bound |"
    ) < (lines.index("| `bm25` | 0.90 |  |"))
    assert any("agreement is unknown" in line for line in lines)
    assert "4 typed on the judging page" in lines[0]


@pytest.mark.parametrize(
    ("kappa", "band"),
    [
        (None, "undefined (one grade throughout)"),
        (0.85, "almost perfect"),
        (0.6, "substantial"),
        (-0.1, "worse than chance"),
    ],
)
def test_kappa_bands(kappa, band):
    assert kappa_band(kappa) == band
