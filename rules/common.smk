# Helpers shared by every stage: the validated config, the model x method matrix, input functions.
import re

from archive_encoders import config as aec
from archive_encoders import paths
from archive_encoders import shards as aec_shards
from archive_encoders import variants as aec_variants

aec.validate(
    config
)  # schema (fills defaults) + cross-key checks; fails before any job runs

MATRIX = aec.matrix(config)
MODELS = sorted({model for model, _ in MATRIX})
METHODS = sorted({method for _, method in MATRIX})
TEACHERS = sorted(
    {
        params["teacher"]
        for method, params in config["methods"].items()
        if aec.method_type(config, method) == "distill"
    }
)
VARIANTS = list(aec_variants.NAMES)


def _one_of(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    model=_one_of(MODELS),
    method=_one_of(METHODS),
    teacher=_one_of(TEACHERS),
    variant=_one_of(VARIANTS),
    shard=rf"\d{{{aec_shards.SHARD_DIGITS}}}",


# --- params: only the keys a rule depends on, so a change reruns only what it affects ---


def archive_search_settings():
    keys = (
        "source",
        "base_url",
        "query",
        "sort",
        "max_items",
        "local_dir",
        "file_preference",
    )
    return {k: config["archive"].get(k) for k in keys}


def archive_location_settings():
    """Where downloads.parquet paths lie (local_dir's parent for a local source): all a shard's job reads
    of the archive section, so a wider query does not rerun the shards it leaves alone.
    """
    return {k: config["archive"].get(k) for k in ("source", "local_dir")}


# The keys of `clean` that dedupe_corpus alone reads.
DEDUPE_KEYS = ("dedupe_threshold", "cluster_threshold")


def clean_shard_settings():
    """The clean keys a shard's job reads: all but the dedupe thresholds, which only dedupe_corpus reads."""
    return {k: v for k, v in config["clean"].items() if k not in DEDUPE_KEYS}


def dedupe_settings():
    return {k: config["clean"][k] for k in DEDUPE_KEYS}


def model_settings(wildcards):
    return aec.model_spec(config, wildcards.model).as_dict()


def teacher_settings(wildcards):
    return aec.model_spec(config, wildcards.teacher).as_dict()


def method_settings(wildcards):
    params = dict(config["methods"][wildcards.method])
    params["type"] = aec.method_type(config, wildcards.method)
    if params["type"] == "distill":
        params["teacher_model"] = aec.model_spec(config, params["teacher"]).as_dict()
    return params


def reference_model_settings(key):
    """The model named by config[key] (e.g. chunk.tokenizer_model), or the first candidate."""
    section, name = key.split(".")
    return aec.reference_model(config, config[section].get(name)).as_dict()


# --- input functions ---


def shard_names(wildcards=None):
    """The shards assign_shards listed; known once that checkpoint has run (until then Snakemake
    plans the jobs that need them after it)."""
    return aec_shards.shard_names(checkpoints.assign_shards.get().output.shard_items)


def every_shard(template):
    """An input function: `template` (a per-shard output, with {shard}) for every shard."""

    def of_every_shard(wildcards):
        return expand(template, shard=shard_names())

    return of_every_shard


def training_inputs(wildcards):
    """Only the data a method reads, so new TSDAE pairs do not retrain the MNRL methods (and vice versa)."""
    kind = aec.method_type(config, wildcards.method)
    inputs = {}
    if kind in ("full", "lora", "qlora") or (
        kind == "tsdae" and config["methods"][wildcards.method].get("then_mnrl")
    ):
        inputs["triplets"] = rules.mine_triplets.output.triplets
    if kind == "tsdae":
        inputs["tsdae"] = rules.tsdae_pairs.output.pairs
    if kind == "distill":
        teacher = config["methods"][wildcards.method]["teacher"]
        inputs["teacher"] = expand(
            rules.teacher_embeddings.output.embeddings, teacher=teacher
        )[0]
    return inputs


def trained_models():
    return [f"results/models/{model}/{method}" for model, method in MATRIX]


def onnx_exports():
    return [f"results/onnx/{model}/{method}" for model, method in MATRIX]


def evaluations():
    return [
        f"results/eval/{model}/{method}/{variant}.json"
        for model, method in MATRIX
        for variant in VARIANTS
    ]


def latency_measurements():
    return [
        f"results/latency/{model}/{method}/{variant}.json"
        for model, method in MATRIX
        for variant in VARIANTS
    ]


def evaluated_model(wildcards):
    """The torch folder for the torch variant, the ONNX folder for the others."""
    if wildcards.variant == "torch":
        return f"results/models/{wildcards.model}/{wildcards.method}"
    return f"results/onnx/{wildcards.model}/{wildcards.method}"


# --- resources: sized per job so a cluster profile can place it ---


def training_gpus(wildcards):
    """One GPU when the config asks for CUDA; cluster profiles may override with set-resources."""
    return 1 if config["device"] == "cuda" else 0


def training_mem_mb(wildcards):
    kind = aec.method_type(config, wildcards.method)
    return {"baseline": 4000, "qlora": 12000, "lora": 12000}.get(kind, 16000)
