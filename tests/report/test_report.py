"""The report: the paired non-inferiority verdict by hand, the tables, the files, the captions."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from support.eval_fixtures import fake_evaluations

from archive_encoders import paths
from archive_encoders.evaluate.compare import compare
from archive_encoders.io import write_json
from archive_encoders.report import write_report
from archive_encoders.report.choice import choose, recommendation_record
from archive_encoders.report.tables import cost_table, pareto_front

QUALITY = {
    ("baseline", "torch"): 2.0,
    ("baseline", "onnx-int8"): 2.0,
    ("lora", "torch"): 0.2,
    ("lora", "onnx-int8"): 0.2,
}
# query latency by hand: int8 is 4x faster than torch; BM25 0.5 ms
LATENCY_MS = {"torch": 8.0, "onnx-int8": 2.0}


def write_stage_files(root: Path, folders: dict[str, Path]) -> dict:
    """train_metrics.json, fidelity.json and latency JSONs of model m, in the layout of the stages."""
    models, exports, latency = [], [], []
    for method in ("baseline", "lora"):
        model = root / "models" / method
        write_json(
            model / "train_metrics.json",
            {
                "model": "m",
                "method": method,
                "type": method,
                "device": "cpu",
                "wall_time_s": 10.0,
                "train_time_s": 8.0,
                "samples": 0 if method == "baseline" else 400,
                "steps": 0 if method == "baseline" else 25,
                "samples_per_s": None if method == "baseline" else 50.0,
                "peak_ram_mb": 900.0,
                "peak_gpu_mb": None,
                "trainable_params": 0 if method == "baseline" else 1000,
                "total_params": 100_000,
                "pair_kinds": {} if method == "baseline" else {"inverse_cloze": 300, "neighbour": 100},
            },
        )
        models.append(model)
        export = root / "onnx" / method
        write_json(
            export / "fidelity.json",
            {
                "model": "m",
                "method": method,
                "threshold": 0.99,
                "variants": {
                    "onnx-int8": {"mean_cosine": 0.997, "min_cosine": 0.99, "passed": True, "size_mb": 25.0}
                },
            },
        )
        exports.append(export)
        for variant, ms in LATENCY_MS.items():
            path = root / "latency" / method / f"{variant}.json"
            write_json(
                path,
                {
                    "model": "m",
                    "method": method,
                    "variant": variant,
                    "batch1_query_ms": {"p50": ms, "p95": ms * 1.5},
                    "batch1_passage_ms": {"p50": ms * 3},
                    "throughput_texts_per_s": 1000 / ms,
                    "size_mb": 100.0 if variant == "torch" else 25.0,
                    "cpu": "Test CPU (2 cores)",
                    "cpu_flags": ["avx2"],
                    "threads": 2,
                },
            )
            latency.append(path)
    return {"models": models, "exports": exports, "latency": latency}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("report")
    folders = fake_evaluations(root, monkeypatch, QUALITY)
    monkeypatch.undo()
    dense = [folders["baseline"], folders["lora"]]
    compare(dense, folders["bm25"], root / "querysets", [], root / "compare", bootstrap_samples=300, seed=5)
    stage = write_stage_files(root, folders)
    outputs = {name: root / path for name, path in paths.REPORT_FILES.items()}
    write_json(root / "judging.json", JUDGING_RECORD)
    summary = write_report(
        root / "compare",
        stage["models"],
        stage["exports"],
        dense,
        folders["bm25"],
        stage["latency"],
        root / "querysets",
        corpus_chunks=4000,
        outputs=outputs,
        report_settings={"margin": 0.01},
        judging=root / "judging.json",
    )
    return root, outputs, summary


JUDGING_RECORD = {
    "n_queries": 31,
    "n_queries_with_relevant": 30,
    "n_queries_typed": 2,
    "annotators": ["ann", "bob"],
    "n_judgments": 500,
    "pool_depth": 10,
    "n_pooled_systems": 5,
    "grades": {"0": 300, "1": 100, "2": 60},
    "merge_rule": "mean of the annotators' grades, rounded half up",
    "judged_at_10": {
        "bm25": {"judged": 0.95, "flagged": False},
        "m/lora/torch/dense": {"judged": 0.4, "flagged": True},
    },
    "kappa": {"ann / bob": {"kappa": 0.71, "n_pairs": 120}},
}


def test_the_judged_set_section_shows_coverage_and_agreement(report):
    _, outputs, _ = report
    text = outputs["report_md"].read_text(encoding="utf-8")
    section = text.split("## The judged set: how far its judgments reach")[1].split("## ")[0]
    assert "31 queries judged (30 with a relevant passage" in section
    assert "the top 10 of each of 5 retrievers" in section
    assert "| `m/lora/torch/dense` | 0.40 | **mostly unjudged**" in section
    assert "| ann / bob | 0.71 | 120 | substantial |" in section


def test_every_report_file_is_written(report):
    _, outputs, _ = report
    for name, path in outputs.items():
        assert path.is_file() and path.stat().st_size > 0, name
    assert outputs["pareto_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outputs["pareto_svg"].read_text().lstrip().startswith("<?xml")


def test_summary_has_every_row_once_with_latency_and_flags(report):
    _, _, summary = report
    keys = summary.select("model", "method", "variant", "retriever", "query_set").rows()
    assert len(keys) == len(set(keys)) == 4 * 2 * 3 + 2
    lora_int8 = summary.filter(
        (pl.col("method") == "lora") & (pl.col("variant") == "onnx-int8") & (pl.col("retriever") == "dense")
    )
    assert lora_int8["query_p50_ms"].to_list() == [2.0, 2.0] and not lora_int8["low_fidelity"].any()
    hybrid = summary.filter((pl.col("retriever") == "hybrid-rrf") & (pl.col("variant") == "torch"))
    bm25_ms = summary.filter(pl.col("retriever") == "lexical")["query_p50_ms"][0]
    assert hybrid["query_p50_ms"].to_list() == pytest.approx([8.0 + bm25_ms] * 4)  # dense + BM25
    # the lora rows trained on inverse-cloze pairs: the ict set is in-distribution for them only
    ict = summary.filter(pl.col("query_set") == "ict")
    assert ict.filter(pl.col("method") == "lora")["in_distribution"].all()
    assert not ict.filter(pl.col("method") == "baseline")["in_distribution"].any()
    assert not summary.filter(pl.col("query_set") == "title")["in_distribution"].any()


def test_recommendation_is_the_fastest_non_inferior_row(report):
    _, outputs, summary = report
    record = json.loads(outputs["recommendation"].read_text())
    # lora torch and lora int8 are equally good on both sets; int8 is 4x faster; BM25 is far worse here
    assert (record["model"], record["method"], record["variant"], record["retriever"]) == (
        "m",
        "lora",
        "onnx-int8",
        "dense",
    )
    assert record["artefact"] == "results/onnx/m/lora" and record["decision_sets"] == ["ict", "title"]
    text = outputs["report_md"].read_text()
    assert "**Deploy `m/lora/onnx-int8`**" in text
    assert "## Did fine-tuning help?" in text and "Δ vs base" in text and "Δ vs BM25" in text


def choice_frame(rows):
    """A summary with only the columns the decision reads: (name, set, ndcg, delta, low, latency, flag)."""
    records = []
    for name, query_set, ndcg, delta, low, latency, flagged in rows:
        model, retriever = ("bm25", "lexical") if name == "bm25" else ("m", "dense")
        records.append(
            {
                "model": model,
                "method": name,
                "variant": "v",
                "retriever": retriever,
                "query_set": query_set,
                "ndcg@10": ndcg,
                "ndcg@10_ci_low": ndcg - 0.05,
                "ndcg@10_ci_high": ndcg + 0.05,
                "delta_vs_best": delta,
                "delta_vs_best_ci_low": low,
                "delta_vs_best_ci_high": delta + 0.01,
                "delta_vs_bm25": None,
                "delta_vs_bm25_ci_low": None,
                "delta_vs_bm25_ci_high": None,
                "query_p50_ms": latency,
                "low_fidelity": flagged,
            }
        )
    return pl.DataFrame(records)


def test_choice_by_hand():
    summary = choice_frame(
        [
            ("best", "a", 0.60, 0.0, 0.0, 10.0, False),
            ("best", "b", 0.50, 0.0, 0.0, 10.0, False),
            ("close", "a", 0.595, -0.005, -0.009, 5.0, False),
            ("close", "b", 0.50, 0.0, -0.004, 5.0, False),
            ("fastbad", "a", 0.50, -0.10, -0.12, 1.0, False),
            ("fastbad", "b", 0.50, 0.0, 0.0, 1.0, False),
            ("flagged", "a", 0.60, 0.0, 0.0, 0.5, True),
            ("flagged", "b", 0.50, 0.0, 0.0, 0.5, True),
            ("onlya", "a", 0.60, 0.0, 0.0, 0.1, False),
        ]
    )
    result = choose(summary, ["a", "b"], margin=0.01)
    # close: within 0.01 of the best on both sets by the interval's low end, and faster than best;
    # fastbad fails set a; flagged is low-fidelity; onlya lacks set b
    assert result["recommended"]["method"] == "close"
    assert set(result["eligible"]["method"]) == {"close", "best"}
    assert choose(summary, ["a", "b"], margin=0.2)["recommended"]["method"] == "fastbad"


def test_bm25_is_recommended_when_no_encoder_beats_it():
    summary = choice_frame(
        [
            ("dense", "a", 0.40, -0.002, -0.006, 6.0, False),
            ("bm25", "a", 0.402, 0.0, 0.0, 0.4, False),
        ]
    )
    assert choose(summary, ["a"], margin=0.01)["recommended"]["retriever"] == "lexical"


def test_recommended_hybrid_records_its_fusion_and_dense_half():
    summary = choice_frame(
        [
            ("dense", "a", 0.40, -0.05, -0.07, 6.0, False),
            ("bm25", "a", 0.45, -0.04, -0.06, 0.4, False),
            ("hybrid", "a", 0.50, 0.0, 0.0, 6.4, False),
        ]
    )
    retrievers = {"dense": "dense", "bm25": "lexical", "hybrid": "hybrid-weighted"}
    summary = summary.with_columns(
        method=pl.lit("lora"),
        retriever=pl.Series(list(retrievers.values())),
        model=pl.Series(["m", "bm25", "m"]),
        variant=pl.Series(["onnx-int8", "lexical", "onnx-int8"]),
        fusion_weight=pl.Series([None, None, 0.7], dtype=pl.Float64),
    )
    result = choose(summary, ["a"], margin=0.01)
    record = recommendation_record(result, summary)
    assert record["retriever"] == "hybrid-weighted" and record["fusion"] == {
        "method": "weighted",
        "weight": 0.7,
    }
    assert record["index"] == {"model": "m", "method": "lora", "variant": "onnx-int8"}
    rrf = summary.with_columns(retriever=pl.Series(["dense", "lexical", "hybrid-rrf"]))
    assert recommendation_record(choose(rrf, ["a"], 0.01), rrf)["fusion"] == {"method": "rrf", "weight": None}
    dense = summary.filter(pl.col("retriever") == "dense")
    assert recommendation_record(choose(dense, ["a"], 1.0), dense)["fusion"] is None


def test_pareto_front_on_a_hand_example():
    # (1, .5) fastest; (2, .7) twice: identical points do not dominate each other; (3, .6) is beaten by
    # (2, .7); (4, .9) best quality; a point without latency is never optimal.
    cost = [1, 2, 3, 2, 4, None]
    value = [0.5, 0.7, 0.6, 0.7, 0.9, 1.0]
    assert pareto_front(cost, value).tolist() == [True, True, False, True, True, False]


def test_cost_table_extrapolates_rows_read_per_chunk_and_preparation():
    metrics = [
        {"model": "m", "method": "full", "samples_per_s": 50.0, "trainable_params": 10, "total_params": 100},
        {
            "model": "m",
            "method": "gpl",
            "samples_per_s": 40.0,
            "samples_per_corpus_chunk": 2.0,
            "data_prep_s_per_chunk": 0.9,
        },
        {"model": "m", "method": "baseline", "samples_per_s": None},
    ]
    table = {r["method"]: r for r in cost_table(metrics, corpus_chunks=3600).iter_rows(named=True)}
    assert table["full"]["full_corpus_hours"] == pytest.approx(3600 / 50 / 3600)  # one sample per chunk
    assert table["gpl"]["full_corpus_hours"] == pytest.approx(3600 * 2 / 40 / 3600 + 0.9)
    assert table["baseline"]["full_corpus_hours"] is None
    assert table["full"]["trainable_pct"] == pytest.approx(10.0)


def test_variants_table_ratios_by_hand(report):
    _, outputs, _ = report
    variants = pl.read_csv(outputs["variants"])
    int8 = variants.filter((pl.col("method") == "lora") & (pl.col("variant") == "onnx-int8")).row(
        0, named=True
    )
    assert int8["speedup_query_vs_torch"] == pytest.approx(4.0)
    assert int8["size_ratio_vs_torch"] == pytest.approx(0.25)
    assert int8["speedup_throughput_vs_torch"] == pytest.approx(4.0)
    assert int8["mean_cosine"] == pytest.approx(0.997)


@pytest.mark.parametrize("caption", ["summary", "cost", "variants", "compression", "probe", "pareto"])
def test_report_captions_render_like_snakemake_does(caption):
    """Snakemake renders a caption with Jinja (snakemake.params...), then docutils; both must be clean."""
    from types import SimpleNamespace

    import jinja2
    from docutils.core import publish_parts

    path = Path(__file__).resolve().parents[2] / "workflow" / "report" / f"{caption}.rst"
    text = path.read_text(encoding="utf-8")
    assert "TODO" not in text
    smk = SimpleNamespace(params=SimpleNamespace(export={"min_mean_cosine": 0.99}))
    rst = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(snakemake=smk)
    html = publish_parts(rst, writer="html", settings_overrides={"halt_level": 2, "report_level": 5})["body"]
    assert "<p>" in html and "system-message" not in html


def test_when_the_sets_disagree_the_smallest_worst_case_loss_is_chosen():
    summary = choice_frame(
        [
            ("dense_wins_a", "a", 0.60, 0.0, 0.0, 5.0, False),
            ("dense_wins_a", "b", 0.40, -0.30, -0.35, 5.0, False),
            ("bm25", "a", 0.30, -0.30, -0.36, 0.3, False),
            ("bm25", "b", 0.70, 0.0, 0.0, 0.3, False),
            ("balanced", "a", 0.55, -0.05, -0.08, 7.0, False),
            ("balanced", "b", 0.62, -0.08, -0.11, 7.0, False),
        ]
    )
    result = choose(summary, ["a", "b"], margin=0.01)
    assert result["rule"] == "smallest worst-case loss"
    assert result["recommended"]["method"] == "balanced"  # loses at most 0.08; the others 0.30
    assert result["eligible"].is_empty()


def _sets_frame(names):
    return pl.DataFrame({"query_set": names})


@pytest.mark.parametrize(
    ("available", "configured", "expected"),
    [
        # people's queries first, then the generated sets no family wins by construction
        (["ict", "keyword", "title", "spelling", "team"], None, ["team", "ict", "title"]),
        (["keyword", "spelling", "ict"], None, ["ict"]),
        # nothing else to decide on: the lexical sets are all there is
        (["keyword", "spelling"], None, ["keyword", "spelling"]),
        # a config that names them gets them
        (["ict", "keyword"], ["keyword"], ["keyword"]),
    ],
)
def test_default_decision_sets_leave_out_the_lexical_by_construction_ones(available, configured, expected):
    from archive_encoders.report.choice import decision_sets

    assert decision_sets(_sets_frame(available), configured) == expected


def test_a_configured_decision_set_that_was_not_evaluated_is_named():
    from archive_encoders.report.choice import decision_sets

    with pytest.raises(ValueError, match=r"report.decision_sets: \['title'\] were not evaluated"):
        decision_sets(_sets_frame(["ict"]), ["title"])


def test_fine_tuning_tables_put_people_and_out_of_distribution_sets_first():
    from archive_encoders.report.write import evidence_order

    rows = pl.DataFrame({"in_distribution": [True, False]})
    unseen = pl.DataFrame({"in_distribution": [False, None]})
    order = sorted(
        [("keyword", rows), ("ict", rows), ("title", unseen), ("team", rows)],
        key=lambda item: evidence_order(*item),
    )
    assert [name for name, _ in order] == ["team", "title", "ict", "keyword"]
