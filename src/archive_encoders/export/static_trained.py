"""Static embeddings trained for retrieval: the distilled static model (static.py), trained further on the
in-domain training triplets.

Plain distillation keeps a token's vector as the transformer saw it alone, out of context; published static
models trained on retrieval pairs keep far more of their teacher's retrieval quality (model2vec's potion
and tokenlearn, sentence-transformers' static-retrieval models). The recipe here, with the parts that
install beside our stack (model2vec's `train` extra and `tokenlearn` pin an older transformers):

1. model: the distilled vectors with their Zipf-rank SIF weights taken out, scaled instead by SIF weights
   from the train chunks' own token frequencies, a / (a + p(token)); loaded into sentence-transformers'
   StaticEmbedding (a mean over token vectors, the same sum the static encoder serves, up to its norm);
2. data: the triplets the datasets stage mined (pseudo-query, positive passage, hard negative);
3. loss: MultipleNegativesRankingLoss, every other passage of a batch a negative: static steps are cheap,
   so batches are large;
5-6. sentence-transformers' trainer, batches without duplicate texts;
8. save: a model2vec folder like the distilled one (only the tokens that carry a vector), which the
   torch-free `encoders.static.StaticEncoder` serves.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archive_encoders.config import default_seed, with_defaults
from archive_encoders.datasets.splits import train_chunk_texts
from archive_encoders.encoders.graph import CONFIG_FILE, read_encoder_config
from archive_encoders.encoders.static import WEIGHTS_FILE, unknown_token_id
from archive_encoders.export.static import sif_weights
from archive_encoders.io import atomic_dir, read_json, write_json
from archive_encoders.sampling import sample_in_order
from archive_encoders.system import size_mb

log = logging.getLogger(__name__)

VARIANT = "static-trained"
RECORD_FILE = "static_trained.json"


def train_static(
    static_dir: str | os.PathLike,
    triplets: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: Mapping[str, Any] | None = None,
    corpus: str | os.PathLike | None = None,
    splits_path: str | os.PathLike | None = None,
    sample_texts: Sequence[str] | None = None,
    threads: int | None = None,
    seed: int | None = None,
) -> dict:
    """Train the distilled static model in `static_dir` on `triplets` (anchor, positive, negative) and
    write a model2vec folder at `out_dir` (atomically); return its record.

    Token frequencies for the SIF weights come from the train-split chunks (`corpus` + `splits_path`) or
    from `sample_texts`.
    """
    import torch
    from transformers import set_seed

    settings = with_defaults("static_trained", settings)
    seed = default_seed(seed)
    if threads:
        torch.set_num_threads(int(threads))
    set_seed(seed)
    started = time.perf_counter()
    static_dir = Path(static_dir)
    source = read_encoder_config(static_dir)

    # 1. model: distilled vectors, SIF weights from the corpus's token frequencies
    tokenizer, vectors = distilled_vectors(static_dir)
    if sample_texts is None:
        if corpus is None or splits_path is None:
            raise ValueError("static_trained: give the train chunks (corpus and splits) or sample_texts")
        sample_texts = train_chunk_texts(corpus, splits_path)
    probabilities = token_probabilities(tokenizer, sample_texts)
    unk = unknown_token_id(tokenizer)
    vectors = vectors * corpus_sif_weights(probabilities, float(settings["sif_coefficient"]))[:, None]
    if unk is not None:
        vectors[unk] = 0.0  # the served encoder drops unknown tokens
    model = static_sentence_transformer(tokenizer, vectors)

    # 2. data
    dataset = pair_dataset(triplets, settings, seed)

    # 3. loss, 5. arguments, 6. trainer
    curve, steps = fit(model, dataset, settings, seed)

    # 8. save
    trained = model[0].embedding.weight.detach().cpu().numpy().astype(np.float32)
    if unk is not None:
        trained[unk] = 0.0
    static = compact_static_model(trained, tokenizer, read_json(static_dir / "config.json"))
    record = {
        "model": source["model"],
        "method": source["method"],
        "variant": VARIANT,
        "vocabulary": int(vectors.shape[0]),
        "trained_tokens": int(static.embedding.shape[0] - 1),
        "dimension": int(vectors.shape[1]),
        "pairs": len(dataset),
        "hard_negatives": "negative" in dataset.column_names,
        "steps": steps,
        "loss_curve": curve,
        "train_time_s": round(time.perf_counter() - started, 2),
        "settings": dict(settings),
    }
    with atomic_dir(out_dir) as tmp:
        static.save_pretrained(str(tmp))
        record["size_mb"] = round(size_mb(tmp / WEIGHTS_FILE), 2)
        write_json(
            tmp / CONFIG_FILE,
            {
                **{k: record[k] for k in ("model", "method", "dimension")},
                "query_prefix": "",
                "passage_prefix": "",
                "files": {"static": WEIGHTS_FILE},
                "settings": dict(settings),
            },
        )
        write_json(tmp / RECORD_FILE, record)
    log.info(
        "static-trained model of %s/%s: %d pairs, %d steps, loss %s -> %s, %.1f s",
        record["model"],
        record["method"],
        record["pairs"],
        steps,
        curve[0]["loss"] if curve else None,
        curve[-1]["loss"] if curve else None,
        record["train_time_s"],
    )
    return record


def distilled_vectors(static_dir: Path):
    """(tokenizer, one row per token id) of a distilled model2vec folder, without its SIF weights: the
    Zipf-rank weights static.py stored (or folded in, with the whole vocabulary kept) are taken out, so the
    corpus's own weights replace them. Tokens the distillation left out are zero rows."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(static_dir / "tokenizer.json"))
    tensors = load_file(str(static_dir / WEIGHTS_FILE))
    embeddings = np.asarray(tensors["embeddings"], dtype=np.float32)
    mapping = tensors.get("mapping")
    vectors = embeddings if mapping is None else embeddings[np.asarray(mapping, dtype=np.int64)]
    vocab_size = tokenizer.get_vocab_size()
    if vectors.shape[0] != vocab_size:
        raise ValueError(f"{static_dir}: {vectors.shape[0]} token vectors for a vocabulary of {vocab_size}")
    if "weights" not in tensors:  # the whole vocabulary kept: static.py folded its weights into the vectors
        coefficient = float(read_json(static_dir / "config.json")["sif_coefficient"])
        vectors = vectors / sif_weights(vocab_size, coefficient)[:, None]
    return tokenizer, np.ascontiguousarray(vectors, dtype=np.float32)


def token_probabilities(tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Each token id's share of the tokens of `texts` (0 for tokens they lack)."""
    counts: Counter[int] = Counter()
    for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        counts.update(encoding.ids)
    total = sum(counts.values())
    if not total:
        raise ValueError("static_trained: the sample texts have no tokens to count")
    probabilities = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    ids = np.fromiter(counts.keys(), dtype=np.int64)
    probabilities[ids] = np.fromiter(counts.values(), dtype=np.float64) / total
    return probabilities


def corpus_sif_weights(probabilities: np.ndarray, coefficient: float) -> np.ndarray:
    """SIF weights a / (a + p) from corpus frequencies p (Arora et al., 2017): frequent tokens count less."""
    return (coefficient / (coefficient + probabilities)).astype(np.float32)


def static_sentence_transformer(tokenizer, vectors: np.ndarray):
    """A SentenceTransformer of one StaticEmbedding over `vectors` (mean of the text's token vectors)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    embedding = StaticEmbedding(tokenizer, embedding_weights=torch.from_numpy(vectors.copy()))
    return SentenceTransformer(modules=[embedding], device="cpu")


def pair_dataset(triplets: str | os.PathLike, settings: Mapping[str, Any], seed: int):
    """(anchor, positive[, negative]) of the triplets, a seeded sample of max_pairs when set."""
    from datasets import Dataset

    columns = ["anchor", "positive", "negative"] if settings["hard_negatives"] else ["anchor", "positive"]
    frame = pl.read_parquet(triplets, columns=columns)
    if frame.is_empty():
        raise ValueError(f"{triplets}: no training triplets for the static-trained variant")
    if settings["max_pairs"]:
        rng = np.random.default_rng(seed)
        frame = frame[sample_in_order(list(range(frame.height)), int(settings["max_pairs"]), rng)]
    return Dataset.from_dict({c: frame[c].to_list() for c in columns})


def fit(model, dataset, settings: Mapping[str, Any], seed: int) -> tuple[list[dict], int]:
    """MNRL over the pairs with sentence-transformers' trainer; (loss curve, steps)."""
    import tempfile

    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers.trainer_callback import PrinterCallback

    loss = losses.MultipleNegativesRankingLoss(model)
    # a batch no larger than the data: one step still sees every pair
    batch_size = min(int(settings["batch_size"]), len(dataset))
    with tempfile.TemporaryDirectory(prefix="static-trained-") as work_dir:
        args = SentenceTransformerTrainingArguments(
            output_dir=work_dir,
            num_train_epochs=settings["epochs"],
            per_device_train_batch_size=batch_size,
            learning_rate=settings["learning_rate"],
            warmup_steps=min(float(settings["warmup_ratio"]), 0.999),  # a ratio, as in train/run.py
            seed=seed,
            data_seed=seed,
            use_cpu=True,
            batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate text would be its own false negative
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
        trainer.remove_callback(PrinterCallback)
        output = trainer.train()
    curve = [{"step": e["step"], "loss": float(e["loss"])} for e in trainer.state.log_history if "loss" in e]
    return curve, int(output.global_step)


def compact_static_model(vectors: np.ndarray, tokenizer, distilled_config: Mapping[str, Any]):
    """The model2vec StaticModel of the tokens whose vector is not zero: those rows plus one zero row that
    every other token maps to (the distilled folder's layout)."""
    from model2vec import StaticModel

    kept = np.flatnonzero(np.abs(vectors).sum(axis=1) > 0)
    mapping = np.full(vectors.shape[0], kept.size, dtype=np.int64)
    mapping[kept] = np.arange(kept.size)
    rows = np.concatenate([vectors[kept], np.zeros((1, vectors.shape[1]), dtype=np.float32)])
    config = {
        k: distilled_config[k]
        for k in ("model_type", "architectures", "tokenizer_name", "apply_pca", "hidden_dim", "pooling")
        if k in distilled_config
    }
    return StaticModel(
        vectors=rows,
        tokenizer=tokenizer,
        config={**config, "seq_length": 1000000, "trained_on": "triplets"},
        normalize=True,
        base_model_name=str(distilled_config.get("tokenizer_name", "")),
        weights=None,
        token_mapping=mapping,
        **({"max_length": distilled_config["max_length"]} if "max_length" in distilled_config else {}),
    )
