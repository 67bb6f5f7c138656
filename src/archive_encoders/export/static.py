"""Static embeddings: distil a trained sentence encoder into one vector per token (model2vec's recipe).

The recipe of `model2vec.distill.distill_from_model` (Tulkens & van Dongen, 2024): every token of the
model's vocabulary is run through the transformer on its own ([CLS] token [SEP]), its output pooled as
the model pools; PCA reduces the vectors to `pca_dims`; SIF weights (Zipf's law over the vocabulary's
ranks) scale down frequent tokens. It is written here because `model2vec.distill` needs the `skeletoken`
package (model2vec's `distill` extra), which only its custom-vocabulary feature uses and which this
environment lacks; the result is saved and loaded with model2vec's own StaticModel, so any model2vec
user (and `static_encoder.StaticEncoder`, torch-free) reads it.

`max_vocabulary` keeps only the N tokens most frequent in the train chunks (the others map to a zero
vector, i.e. are ignored like unknown tokens): a multilingual vocabulary of 250k tokens shrinks to the
part a Russian corpus uses, and distillation is that much faster.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from archive_encoders.config import ModelSpec, with_defaults
from archive_encoders.datasets.splits import train_chunk_texts
from archive_encoders.encoders.graph import CONFIG_FILE
from archive_encoders.io import atomic_dir, write_json
from archive_encoders.system import size_mb

log = logging.getLogger(__name__)

FORWARD_BATCH = 256  # token sequences per forward pass (model2vec's default)


def export_static(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_spec: Mapping[str, Any],
    static_settings: Mapping[str, Any] | None = None,
    corpus: str | os.PathLike | None = None,
    splits_path: str | os.PathLike | None = None,
    sample_texts: Sequence[str] | None = None,
    threads: int | None = None,
    *,
    method: str,
) -> dict:
    """Distil `model_dir` into a model2vec folder at `out_dir` (written atomically); return its record.

    Token frequencies for `max_vocabulary` come from the train-split chunks (`corpus` +
    `splits_path`) or from `sample_texts`; with `max_vocabulary` null neither is read.
    """
    import torch

    from archive_encoders.models import load_sentence_transformer

    settings = with_defaults("static", static_settings)
    if threads:
        torch.set_num_threads(int(threads))
    spec = replace(ModelSpec.from_config(dict(model_spec)), path=str(model_dir))
    model = load_sentence_transformer(spec, device="cpu")
    tokenizer = runtime_tokenizer(model.tokenizer)
    vocab_size = tokenizer.get_vocab_size()
    started = time.perf_counter()

    keep = np.arange(vocab_size)
    if settings["max_vocabulary"]:
        texts = list(sample_texts) if sample_texts is not None else train_chunk_texts(corpus, splits_path)
        keep = frequent_tokens(tokenizer, texts, int(settings["max_vocabulary"]))
    vectors = pca(token_vectors(model, keep, spec.pooling), int(settings["pca_dims"]))
    static = static_model(vectors, keep, tokenizer, spec, settings)
    record = {
        "model": spec.name,
        "method": method,
        "variant": "static",
        "vocabulary": int(vocab_size),
        "distilled_tokens": int(keep.size),
        "dimension": int(vectors.shape[1]),
        "distill_time_s": round(time.perf_counter() - started, 2),
    }
    with atomic_dir(out_dir) as tmp:
        static.save_pretrained(str(tmp))
        record["size_mb"] = round(size_mb(tmp / "model.safetensors"), 2)
        write_json(
            tmp / CONFIG_FILE,
            {
                **{k: record[k] for k in ("model", "method", "dimension")},
                # no prefixes: every query would get the same prefix vector added, which only blurs it
                "query_prefix": "",
                "passage_prefix": "",
                "files": {"static": "model.safetensors"},
                "settings": dict(settings),
            },
        )
        write_json(tmp / "static.json", record)
    log.info("static model of %s/%s: %s", spec.name, method, record)
    return record


def static_model(
    vectors: np.ndarray, keep: np.ndarray, tokenizer, spec: ModelSpec, settings: Mapping[str, Any]
):
    """The model2vec StaticModel of the kept tokens' vectors, SIF-weighted: with the whole vocabulary the
    weights are folded into the vectors; with a subset, kept tokens map to their rows and every other
    token to a zero row at the end."""
    from model2vec import StaticModel

    vocab_size = tokenizer.get_vocab_size()
    weights = sif_weights(vocab_size, float(settings["sif_coefficient"]))
    mapping = None
    if keep.size == vocab_size:
        vectors = vectors * weights[:, None]
        weights = None
    else:
        vectors = np.concatenate([vectors, np.zeros((1, vectors.shape[1]), dtype=vectors.dtype)])
        mapping = np.full(vocab_size, keep.size, dtype=np.int64)
        mapping[keep] = np.arange(keep.size)
    vectors = vectors.astype(np.dtype(settings["dtype"]))
    return StaticModel(
        vectors=vectors,
        tokenizer=tokenizer,
        config={
            "model_type": "model2vec",
            "architectures": ["StaticModel"],
            "tokenizer_name": spec.name,
            "apply_pca": int(settings["pca_dims"]),
            "sif_coefficient": float(settings["sif_coefficient"]),
            "hidden_dim": int(vectors.shape[1]),
            "seq_length": 1000000,
            "pooling": spec.pooling,
        },
        normalize=True,
        base_model_name=spec.name,
        weights=weights,
        token_mapping=mapping,
        max_length=int(spec.max_seq_length),
    )


def runtime_tokenizer(hf_tokenizer):
    """The fast tokenizer's backend with padding and truncation off (StaticModel sets its own)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def frequent_tokens(tokenizer, texts: Sequence[str], n: int) -> np.ndarray:
    """The ids of the `n` most frequent tokens of `texts` (fewer if fewer occur), sorted by id."""
    counts: Counter[int] = Counter()
    for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        counts.update(encoding.ids)
    if not counts:
        raise ValueError("static.max_vocabulary: the sample texts have no tokens to count")
    return np.array(sorted(token for token, _ in counts.most_common(n)), dtype=np.int64)


def token_vectors(model, token_ids: np.ndarray, pooling: str) -> np.ndarray:
    """The transformer's pooled output for each token alone: [CLS] token [SEP] (or the model's own
    special tokens), float32 (len(token_ids), hidden)."""
    import torch

    hf_tokenizer = model.tokenizer
    transformer = model[0].auto_model.eval()
    # the special tokens the model wraps every input in: what it adds around an empty text (unpadded:
    # all-MiniLM-L6-v2's tokenizer.json pads everything to 128)
    specials = runtime_tokenizer(hf_tokenizer).encode("").ids
    head, tail = specials[:1], specials[1:]
    sequences = [[*head, int(t), *tail] for t in token_ids]
    width = max(len(s) for s in sequences)
    pad = int(hf_tokenizer.pad_token_id or 0)
    out = np.empty((len(sequences), transformer.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(sequences), FORWARD_BATCH):
            batch = sequences[start : start + FORWARD_BATCH]
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, seq in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            hidden = transformer(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                m = mask.unsqueeze(-1).float()
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            out[start : start + len(batch)] = pooled.numpy()
    return np.nan_to_num(out)


def pca(x: np.ndarray, dims: int) -> np.ndarray:
    """model2vec's PCA (eigendecomposition of the covariance, sign-fixed components); `dims` is capped
    at the width, and PCA is skipped when there are fewer rows than `dims`."""
    dims = min(dims, x.shape[1])
    if dims >= x.shape[0]:
        log.warning("PCA to %d dims skipped: only %d token vectors", dims, x.shape[0])
        return x.astype(np.float32)
    centred = x.astype(np.float64) - x.mean(axis=0)
    cov = centred.T @ centred / (x.shape[0] - 1)
    _, eigvecs = np.linalg.eigh(cov)
    components = eigvecs[:, ::-1][:, :dims].T
    scores = centred @ components.T
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(dims)])
    return (scores * signs).astype(np.float32)


def sif_weights(n: int, coefficient: float) -> np.ndarray:
    """SIF weights a / (a + p(rank)), p from Zipf's law over the vocabulary's ranks (model2vec's)."""
    inv_rank = 1.0 / np.arange(2, n + 2)
    proba = inv_rank / inv_rank.sum()
    return (coefficient / (coefficient + proba)).astype(np.float32)
