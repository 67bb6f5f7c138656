# Training data: document-level splits, TSDAE pairs, triplets with hard negatives; held-out query sets.


rule split_documents:
    input:
        corpus=rules.corpus_manifest.output.manifest,
    output:
        splits=ensure("results/datasets/splits.parquet", non_empty=True),
    log:
        "logs/datasets/split_documents.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        split=config["datasets"]["split"],
        seed=config["seed"],
    script:
        "../workflow/scripts/split_documents.py"


rule tsdae_pairs:
    input:
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
    output:
        pairs=ensure("results/datasets/tsdae.parquet", non_empty=True),
    log:
        "logs/datasets/tsdae_pairs.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        deletion_ratio=config["datasets"]["tsdae_deletion_ratio"],
        max_pairs=config["datasets"]["max_pairs"],
        seed=config["seed"],
    script:
        "../workflow/scripts/tsdae_pairs.py"


rule mine_triplets:
    input:
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
    output:
        triplets=ensure("results/datasets/triplets.parquet", non_empty=True),
    log:
        "logs/datasets/mine_triplets.log",
    conda:
        "../envs/workflow.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        miner=reference_model_settings("datasets.miner_model"),
        hard_negatives=config["datasets"]["hard_negatives"],
        max_pairs=config["datasets"]["max_pairs"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow/scripts/mine_triplets.py"


rule build_query_sets:
    input:
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
    output:
        query_sets=directory(paths.QUERY_SETS),
    log:
        "logs/datasets/build_query_sets.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        retrieval=config["datasets"]["retrieval"],
        languages=config["clean"]["languages"],
        seed=config["seed"],
    script:
        "../workflow/scripts/build_query_sets.py"
