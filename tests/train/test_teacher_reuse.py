"""A teacher that is the miner's encoder reads the miner's embeddings (datasets/reuse.py) and gets what it
would have encoded itself; another teacher encodes everything."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from support.synthetic_corpus import build_datasets, tiny_spec

from archive_encoders.train import teachers
from archive_encoders.vectors import cosines

pytestmark = pytest.mark.usefixtures("one_thread")
MAX_PAIRS = 2000  # the miner's (build_datasets)


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_model):
    return build_datasets(tmp_path_factory.getbasetemp() / "synthetic", tiny_model)


def embeddings(data, out, teacher, reuse):
    frame = teachers.teacher_embeddings(
        data / "chunks.parquet",
        data / "splits.parquet",
        data / "triplets.parquet",
        out / "teacher.parquet",
        teacher,
        "cpu",
        max_pairs=MAX_PAIRS,
        meta_out=out / "teacher.json",
        reuse=reuse,
    )
    return frame, json.loads((out / "teacher.json").read_text())


def test_a_distillation_teacher_that_is_the_miner_encodes_nothing_and_gets_the_same_vectors(
    tmp_path, data, tiny_model
):
    miner = data / "miner_embeddings.parquet"
    (tmp_path / "own").mkdir(), (tmp_path / "reused").mkdir()
    own, own_meta = embeddings(data, tmp_path / "own", tiny_spec(tiny_model), None)
    reused, meta = embeddings(data, tmp_path / "reused", tiny_spec(tiny_model), miner)
    assert meta["encoded_texts"] == 0 and meta["reused_embeddings"] == reused.height
    assert own_meta["encoded_texts"] == own.height and own_meta["reused_embeddings"] == 0
    assert reused.select("text", "role", "kind").equals(own.select("text", "role", "kind"))
    a, b = (np.asarray(f["embedding"].to_list(), dtype=np.float32) for f in (own, reused))
    assert cosines(a, b).min() > 1 - 1e-5  # another batch's padding: float rounding only
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1), rtol=1e-4)


def test_another_teacher_encodes_everything(tmp_path, data, tiny_model):
    longer = {**tiny_spec(tiny_model), "max_seq_length": 48}  # a different encoding of the same weights
    frame, meta = embeddings(data, tmp_path, longer, data / "miner_embeddings.parquet")
    assert meta["reused_embeddings"] == 0 and meta["encoded_texts"] == frame.height


def test_a_gpl_bi_encoder_teacher_that_is_the_miner_scores_from_its_embeddings(tmp_path, data, tiny_model):
    def scores(reuse, name):
        frame = teachers.teacher_scores(
            data / "triplets.parquet",
            tmp_path / f"{name}.parquet",
            tiny_spec(tiny_model),
            "cpu",
            meta_out=tmp_path / f"{name}.json",
            reuse=reuse,
        )
        return frame, json.loads((tmp_path / f"{name}.json").read_text())

    own, own_meta = scores(None, "own")
    reused, meta = scores(data / "miner_embeddings.parquet", "reused")
    triplets = pl.read_parquet(data / "triplets.parquet")
    distinct = (
        triplets["anchor"].n_unique() + pl.concat([triplets["positive"], triplets["negative"]]).n_unique()
    )
    assert meta["reused_embeddings"] == distinct and own_meta["reused_embeddings"] == 0
    np.testing.assert_allclose(reused["margin"].to_numpy(), own["margin"].to_numpy(), atol=1e-5)
