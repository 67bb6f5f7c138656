"""Every path template of the workflow, written once.

Paths are relative to the working directory (`snakemake --directory`). The rules fill the templates
with wildcards; the library never parses a path back into a model, method or variant: every JSON a stage
writes names its own.
"""

from __future__ import annotations

RESULTS = "results"
LOGS = "logs"
ARCHIVE_CACHE = "resources/archive"

# corpus
ITEMS = "results/corpus/items.parquet"
DOWNLOADS = "results/corpus/downloads.parquet"
# the corpus stage, per shard (wildcard {shard}: a zero-padded number, shards.shard_name)
SHARD_LEDGER = "resources/corpus/shard_ledger.json"  # which shard each item is in, kept across runs
SHARD_ITEMS_DIR = "results/corpus/shard_items"
SHARD_ITEMS = f"{SHARD_ITEMS_DIR}/{{shard}}.parquet"
SHARD_DIR = "results/corpus/shards/{shard}"
SHARD_DOCUMENTS = f"{SHARD_DIR}/documents.parquet"
SHARD_REJECTED = f"{SHARD_DIR}/rejected.parquet"
SHARD_SIGNATURES = f"{SHARD_DIR}/signatures.parquet"
SHARD_CHUNKS = f"{SHARD_DIR}/chunks.parquet"
# ... and once for the corpus: duplicates and clusters, and the manifest later stages read it through
DEDUPE = "results/corpus/dedupe.parquet"
CORPUS = "results/corpus/corpus.json"

# training data
SPLITS = "results/datasets/splits.parquet"
TSDAE_PAIRS = "results/datasets/tsdae.parquet"
TRIPLETS = "results/datasets/triplets.parquet"
# what the miner encoded (its queries and candidate pool): a teacher that is its encoder reads it
MINER_EMBEDDINGS = "results/datasets/miner_embeddings.parquet"
TEACHER_EMBEDDINGS = "results/teachers/{teacher}/embeddings.parquet"
TEACHER_SCORES = "results/teachers/{teacher}/scores.parquet"
# held-out query sets (querysets.py): <split>/corpus.parquet, <split>/<set>/{queries,qrels,overrides}.parquet
QUERY_SETS = "results/datasets/querysets"
USER_QUERY_SET = "results/datasets/user_sets/{retrieval_set}"

# what a training phase reads (methods.PHASES), by name
DATASETS = {
    "triplets": TRIPLETS,
    "tsdae_pairs": TSDAE_PAIRS,
    "teacher_embeddings": TEACHER_EMBEDDINGS,
    "teacher_scores": TEACHER_SCORES,
}
# each dataset's metadata (rows, source chunks, build time and hardware; for triplets the random-negative
# share per query kind): the same path with .json, read into train_metrics.json for the cost table
DATASET_META = {name: path.removesuffix(".parquet") + ".json" for name, path in DATASETS.items()}

# trained models and their exports: the artefacts a variant is served from (variants.Variant.artefact)
MODEL = "results/models/{model}/{method}"
ONNX = "results/onnx/{model}/{method}"
OPENVINO = "results/openvino/{model}/{method}"
STATIC = "results/static/{model}/{method}"
STATIC_TRAINED = "results/static_trained/{model}/{method}"
ARTEFACTS = {
    "model": MODEL,
    "onnx": ONNX,
    "openvino": OPENVINO,
    "static": STATIC,
    "static_trained": STATIC_TRAINED,
}

# the corpus encoded by one variant, shard by shard (encoders/shard_embeddings.py; rule encode_shard)
EMBEDDINGS_DIR = "results/embeddings/{model}/{method}/{variant}"
SHARD_EMBEDDINGS = {
    kind: f"{EMBEDDINGS_DIR}/{{shard}}{suffix}"
    for kind, suffix in {"vectors": ".npy", "ids": ".parquet", "meta": ".json"}.items()
}

# measurements
EVAL_DIR = "results/eval/{model}/{method}"  # <variant>.json, runs.parquet, per_query.parquet, probe.json
LEXICAL_EVAL_DIR = "results/eval/bm25"  # the same layout, variant "lexical"
# a team's own queries ranked by every retriever, inside each evaluation folder (the judging pool's input)
JUDGING_RUNS = "judging_runs.parquet"
LATENCY = "results/latency/{model}/{method}/{variant}.json"
COMPARISON = "results/compare"  # rows.parquet, per_query.parquet

# the report
REPORT_DIR = "results/report"
REPORT_FILES = {
    "summary_parquet": f"{REPORT_DIR}/summary.parquet",
    "summary_csv": f"{REPORT_DIR}/summary.csv",
    "summary_md": f"{REPORT_DIR}/summary.md",
    "cost": f"{REPORT_DIR}/cost.csv",
    "variants": f"{REPORT_DIR}/variants.csv",
    "probe": f"{REPORT_DIR}/probe.csv",
    "compression": f"{REPORT_DIR}/compression.csv",
    "pareto_png": f"{REPORT_DIR}/pareto.png",
    "pareto_svg": f"{REPORT_DIR}/pareto.svg",
    "report_md": f"{REPORT_DIR}/report.md",
    "recommendation": f"{REPORT_DIR}/recommendation.json",
}
RECOMMENDATION = REPORT_FILES["recommendation"]

# pooled judging (rules/judging.smk): a team's queries, and the top hits of every retriever for them
JUDGING_QUERIES = "results/judging/queries.parquet"
JUDGING_POOL = "results/judging/pool.parquet"

# the search index of the recommended variant over the whole corpus (rules/index.smk)
INDEX_DIR = "results/index/recommended"
INDEX_REPORT = "results/index/index_report.json"


def log(stage: str, name: str) -> str:
    """logs/<stage>/<name>.log, mirroring the results tree."""
    return f"{LOGS}/{stage}/{name}.log"


BENCHMARKS = f"{LOGS}/benchmarks"


def benchmark(rule: str, job: str | None = None) -> str:
    """logs/benchmarks/<rule>.tsv, or <rule>/<job>.tsv for a rule with wildcards: Snakemake's record of
    the job's wall time, CPU and memory, filed under its rule (benchmarks/demo_time.py sums them)."""
    return f"{BENCHMARKS}/{rule}/{job}.tsv" if job else f"{BENCHMARKS}/{rule}.tsv"
