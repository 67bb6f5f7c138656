"""The model a method trains: loaded whole, with LoRA adapters, on a 4-bit base (QLoRA) or with layers
dropped (a distillation student); counted; and merged back into plain weights for export, with a check
that the merged model gives the embeddings of the one that was trained."""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import numpy as np

from archive_encoders.config import ConfigError, ModelSpec
from archive_encoders.methods import METHOD_TYPES
from archive_encoders.models import ModelInfo, load_sentence_transformer
from archive_encoders.train.compatibility import pair_problem
from archive_encoders.vectors import cosines

log = logging.getLogger(__name__)


def _linear4bit_types() -> tuple[type, ...]:
    import bitsandbytes as bnb

    return (bnb.nn.Linear4bit,)


def load_4bit(spec: ModelSpec, device: str):
    """The model with its linear layers in 4-bit NF4 (bitsandbytes); fp32 compute on CPU, bf16 on a GPU."""
    import torch
    from transformers import BitsAndBytesConfig

    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )
    kwargs: dict[str, Any] = {"quantization_config": quant}
    if device == "cuda":
        kwargs["device_map"] = {"": 0}  # quantize straight onto the GPU
    model = load_sentence_transformer(spec, device=device, model_kwargs=kwargs)
    # bitsandbytes repacks 4-bit weights for avx512_bf16 CPUs at the first inference, after which the next
    # backward fails ("a view of a leaf Variable ... in-place"); keeping the plain layout avoids it.
    for module in model.modules():
        if isinstance(module, _linear4bit_types()):
            module.support_avx512bf16_for_cpu = False
    return model


def add_lora(model, params: dict[str, Any]):
    """Wrap the transformer in peft LoRA adapters (base frozen); returns the same SentenceTransformer."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=params["lora_r"],
        lora_alpha=params["lora_alpha"],
        lora_dropout=params["lora_dropout"],
        target_modules=params["target_modules"],
        bias="none",
    )
    # `auto_model` is a read-only property in sentence-transformers 6: the module attribute is `model`
    model[0].model = get_peft_model(model[0].model, config)
    return model


def _layer_list(hf_model):
    """(parent module, attribute name, ModuleList) of the transformer blocks."""
    import torch.nn as nn

    n_layers = getattr(hf_model.config, "num_hidden_layers", None)
    for module in hf_model.modules():
        for attr, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n_layers:
                return module, attr, child
    raise ValueError(
        f"student_layers: cannot find the {n_layers} transformer layers of {type(hf_model).__name__}"
    )


def keep_layers(model, n: int) -> list[int]:
    """Keep `n` evenly spaced transformer layers (first and last included); returns the kept indices."""
    import torch.nn as nn

    hf_model = model[0].model
    parent, attr, layers = _layer_list(hf_model)
    total = len(layers)
    if n >= total:
        return list(range(total))
    keep = sorted({int(i) for i in np.linspace(0, total - 1, n).round()})
    setattr(parent, attr, nn.ModuleList([layers[i] for i in keep]))
    hf_model.config.num_hidden_layers = len(keep)
    if isinstance(getattr(hf_model.config, "layer_types", None), list):
        hf_model.config.layer_types = [hf_model.config.layer_types[i] for i in keep]
    log.info("student: kept layers %s of %d", keep, total)
    return keep


def check_pair(model, spec: ModelSpec, kind: str, params: dict[str, Any]) -> None:
    """The config check's model x method rules again, on the loaded model (a hub model the config check
    could not read before it was downloaded)."""
    config = model[0].model.config
    info = ModelInfo(config.model_type, config.num_hidden_layers, model.get_embedding_dimension())
    problem = pair_problem(spec, info, METHOD_TYPES[kind], params, None)
    if problem:
        raise ConfigError(f"method {params.get('base_method') or kind!r}: {problem}")


def load_model(spec: ModelSpec, kind: str, params: dict[str, Any], device: str):
    """The model to train, once the model x method rules hold for it: 4-bit for qlora, LoRA-wrapped for
    lora/qlora, fewer layers (and optionally a fixed token embedding matrix) for distill."""
    model = load_4bit(spec, device) if kind == "qlora" else load_sentence_transformer(spec, device=device)
    check_pair(model, spec, kind, params)
    if METHOD_TYPES[kind].trains == "adapters":
        add_lora(model, params)
    if kind == "distill" and params.get("student_layers"):
        keep_layers(model, params["student_layers"])
    if kind == "distill" and params.get("freeze_embeddings"):
        model[0].model.get_input_embeddings().weight.requires_grad_(False)
    return model


def count_params(module) -> tuple[int, int]:
    """(trainable, total) parameters; shared (tied) tensors once, 4-bit weights at their real size."""
    seen, trainable, total = set(), 0, 0
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        quant_state = getattr(p, "quant_state", None)
        n = int(np.prod(quant_state.shape)) if quant_state is not None else p.numel()
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def merge_lora(model, spec: ModelSpec, kind: str, device: str):
    """Fold the LoRA adapter into plain weights: in place for lora, onto a fresh fp32 base for qlora."""
    from peft import PeftModel

    if kind == "lora":
        model[0].model = model[0].model.merge_and_unload()
        return model
    with tempfile.TemporaryDirectory(prefix="qlora-adapter-") as adapter_dir:
        model[0].model.save_pretrained(adapter_dir, safe_serialization=True)
        base = load_sentence_transformer(spec, device=device)
        base[0].model = PeftModel.from_pretrained(base[0].model, adapter_dir).merge_and_unload()
    return base


def merge_adapter(model, spec: ModelSpec, kind: str, probe: list[str], device: str):
    """(exportable model, merge check): LoRA merged, with the cosine of merged vs adapter embeddings."""
    if METHOD_TYPES[kind].trains != "adapters":
        return model, None
    before = model.encode(probe, convert_to_numpy=True)
    model = merge_lora(model, spec, kind, device)
    after = model.encode(probe, convert_to_numpy=True)
    cos = cosines(before, after)
    check = {"texts": len(probe), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
    log.info("merged %s vs adapter model: %s", kind, check)
    return model, check
