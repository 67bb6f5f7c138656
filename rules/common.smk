# Helpers shared by every stage: the validated config, the model x method matrix, input functions.
import re
from pathlib import Path

from archive_encoders import config as aec
from archive_encoders import paths
from archive_encoders.methods import METHOD_TYPES
from archive_encoders.variants import VARIANTS as VARIANT_REGISTRY
from archive_encoders.corpus import shards as aec_shards
from archive_encoders.train.compatibility import check_pairs
from archive_encoders.judging.store import typed_queries
from archive_encoders.index.build import corpus_encoding

aec.validate(
    config
)  # schema (fills defaults) + cross-key checks; fails before any job runs
check_pairs(
    config
)  # every model x method of the matrix can run (models' config files, no weights)

MATRIX = aec.matrix(config)
MODELS = sorted({model for model, _ in MATRIX})
METHODS = sorted({method for _, method in MATRIX})
TEACHERS = sorted(
    {
        params["teacher"]
        for method, params in config["methods"].items()
        if METHOD_TYPES[aec.method_type(config, method)].teacher
    }
)
VARIANTS = list(VARIANT_REGISTRY)
# the folders the variants are served from (variants.py: artefact), e.g. the trained model and its ONNX export
ARTEFACT_KINDS = sorted({VARIANT_REGISTRY[v].artefact for v in VARIANTS})


def _one_of(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    model=_one_of(MODELS),
    method=_one_of(METHODS),
    teacher=_one_of(TEACHERS),
    variant=_one_of(VARIANTS),
    retrieval_set=_one_of([e["name"] for e in config["evaluate"]["retrieval_sets"]]),
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
    """The run's method entry with its type, the method a seeded run repeats, its teacher's entry."""
    return aec.method_params(config, wildcards.method)


def run_seed(wildcards):
    """The training seed of a run (`seeds`: full-seed14 trains with seed 14)."""
    return aec.run_seed(config, wildcards.method)


def validation_settings(wildcards):
    """config `validation` for a method that learns (baseline's params stay empty: never rerun by it)."""
    return config["validation"] if method_type(wildcards).trains != "nothing" else {}


def reference_model_settings(key):
    """The model named by config[key] (e.g. chunk.tokenizer_model), or the first candidate."""
    section, name = key.split(".")
    return aec.reference_model(config, config[section].get(name)).as_dict()


# --- input functions ---


def method_type(wildcards):
    return METHOD_TYPES[aec.method_type(config, wildcards.method)]


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
    """Only the datasets a method reads (methods.py), each with its metadata JSON (for the cost), so new
    TSDAE pairs do not retrain the MNRL methods; and the query sets a learning method validates on.
    """
    params = config["methods"][aec.base_method(config, wildcards.method)]
    inputs = {}
    for name in method_type(wildcards).needs_for(params):
        inputs[name] = paths.DATASETS[name].format(teacher=params.get("teacher"))
        inputs[f"{name}_meta"] = paths.DATASET_META[name].format(
            teacher=params.get("teacher")
        )
    if inputs:
        inputs["query_sets"] = paths.QUERY_SETS
    return inputs


def trained_models():
    return [paths.MODEL.format(model=model, method=method) for model, method in MATRIX]


def onnx_exports():
    return [paths.ONNX.format(model=model, method=method) for model, method in MATRIX]


def exports():
    """Every export folder a variant is served from (ONNX, OpenVINO, static), per model x method."""
    kinds = [kind for kind in ARTEFACT_KINDS if kind != "model"]
    return [
        paths.ARTEFACTS[kind].format(model=model, method=method)
        for model, method in MATRIX
        for kind in kinds
    ]


def fidelity_gate_settings():
    """The export section's gate keys, shared by every INT8 export (one threshold for all)."""
    keys = ("fidelity_samples", "min_mean_cosine", "fail_on_low_fidelity")
    return {k: config["export"][k] for k in keys}


def static_inputs(wildcards):
    """The trained model; the chunks and splits only when static.max_vocabulary counts tokens in them."""
    inputs = {"model": paths.MODEL.format(**wildcards)}
    if config["static"]["max_vocabulary"]:
        inputs.update(corpus=paths.CORPUS, splits=paths.SPLITS)
    return inputs


def evaluations():
    return [
        paths.EVAL_DIR.format(model=model, method=method) for model, method in MATRIX
    ]


def _typed_queries():
    """The queries typed on the judging page (judging.db), read once, when the DAG is built."""
    if not config["judging"]["db"]:
        return []
    try:
        return typed_queries(config["judging"]["db"])
    except ValueError as err:
        raise ValueError(f"judging.db: {err}") from None


TYPED_QUERIES = _typed_queries()


def team_queries_file(wildcards=None):
    """config judging.queries (none: only the page's typed queries); the judging target with neither
    is an error that says what to set."""
    if not config["judging"]["queries"] and not TYPED_QUERIES:
        raise ValueError(
            "judging.queries: set it to a text file of your team's queries (one per line) to pool them,"
            " or type queries on the judging page (judging.db)"
        )
    return [config["judging"]["queries"]] if config["judging"]["queries"] else []


def judging_queries():
    """The team's queries every evaluation also ranks (none unless judging.queries is set or queries
    were typed on the judging page)."""
    return (
        [paths.JUDGING_QUERIES] if config["judging"]["queries"] or TYPED_QUERIES else []
    )


def user_query_sets():
    """The imported user-judged sets (config evaluate.retrieval_sets)."""
    return [
        paths.USER_QUERY_SET.format(retrieval_set=entry["name"])
        for entry in config["evaluate"]["retrieval_sets"]
    ]


def judged_summary():
    """The judging.json of the judged set in the verdict (its agreement and coverage), if there is one."""
    return [
        str(Path(entry["path"]) / "judging.json")
        for entry in config["evaluate"]["retrieval_sets"]
        if entry["name"] == aec.JUDGED_SET_NAME
        and (Path(entry["path"]) / "judging.json").is_file()
    ]


def user_set_folder(wildcards):
    by_name = {e["name"]: e["path"] for e in config["evaluate"]["retrieval_sets"]}
    return by_name[wildcards.retrieval_set]


def user_set_files(wildcards):
    """The files a user set is read from, not its folder: a folder's mtime does not change when a file
    in it is rewritten, so an edited qrels file would never rerun the import."""
    # imported here: polars and the query-set code only when a user set is configured
    from archive_encoders.datasets.user_sets import source_files

    return [str(path) for path in source_files(user_set_folder(wildcards))]


def latency_measurements():
    return [
        paths.LATENCY.format(model=model, method=method, variant=variant)
        for model, method in MATRIX
        for variant in VARIANTS
    ]


def variant_artefact(wildcards):
    """The folder a variant is served from, for one model x method (e.g. its ONNX export)."""
    kind = VARIANT_REGISTRY[wildcards.variant].artefact
    return paths.ARTEFACTS[kind].format(model=wildcards.model, method=wildcards.method)


def index_embeddings(wildcards):
    """{vectors, ids, meta: one file per shard} of the corpus encoded as the index needs it (index/build.py
    corpus_encoding): known once the report has recommended a variant; none when it recommends no dense
    row, and build_index says so."""
    recommendation = checkpoints.build_report.get().output.recommendation
    encoding = corpus_encoding(recommendation, config["device"])
    if encoding is None:
        return {}
    return {
        kind: expand(template, **encoding, shard=shard_names())
        for kind, template in paths.SHARD_EMBEDDINGS.items()
    }


def artefact_inputs():
    """{artefact kind: path template} of every folder a configured variant is served from."""
    return {kind: paths.ARTEFACTS[kind] for kind in ARTEFACT_KINDS}


# --- resources: sized per job so a cluster profile can place it ---


def training_gpus(wildcards):
    """One GPU for a method that uses one (methods.py), unless the config says `device: cpu`: with
    `device: auto` a cluster job asks for it and the job falls back to the CPU on a node without one.
    """
    return int(config["device"] != "cpu" and method_type(wildcards).uses_gpu)


def model_job_gpus(wildcards):
    """One GPU for the jobs that run a model over the corpus (mining, teachers), unless `device: cpu`."""
    return int(config["device"] != "cpu")


def teacher_job_gpus(wildcards):
    """model_job_gpus, but none for a bi-encoder teacher that is the miner's encoder: it reads the
    miner's embeddings (datasets/reuse.py) and encodes at most a few random negatives.
    """
    teacher = aec.model_spec(config, wildcards.teacher)
    miner = aec.reference_model(config, config["datasets"].get("miner_model"))
    reads_the_miners = (
        teacher.encoder_type == "bi-encoder" and teacher.encoding() == miner.encoding()
    )
    return 0 if reads_the_miners else model_job_gpus(wildcards)


def shard_encoding_gpus(wildcards):
    """One GPU to encode a shard with a PyTorch variant, unless `device: cpu`; the exports run on CPUs."""
    on_torch = VARIANT_REGISTRY[wildcards.variant].runtime == "torch"
    return int(config["device"] != "cpu" and on_torch)


def training_mem_mb(wildcards):
    return method_type(wildcards).mem_mb
