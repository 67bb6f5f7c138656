# Training data: document-level splits, TSDAE pairs, triplets with hard negatives; held-out query sets.
# Each training dataset has a metadata JSON beside it (rows, source chunks, build time, hardware).


rule split_documents:
    input:
        corpus=rules.corpus_manifest.output.manifest,
    output:
        splits=ensure(paths.SPLITS, non_empty=True),
    log:
        paths.log("datasets", "split_documents"),
    benchmark:
        paths.benchmark("split_documents")
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
        pairs=ensure(paths.TSDAE_PAIRS, non_empty=True),
        meta=paths.DATASET_META["tsdae_pairs"],
    log:
        paths.log("datasets", "tsdae_pairs"),
    benchmark:
        paths.benchmark("tsdae_pairs")
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
        triplets=ensure(paths.TRIPLETS, non_empty=True),
        # rows per query kind, the share of random negatives per kind, mining time and hardware
        meta=paths.DATASET_META["triplets"],
        # what the miner encoded, for a teacher that is the same encoder (datasets/reuse.py)
        embeddings=paths.MINER_EMBEDDINGS,
    log:
        paths.log("datasets", "mine_triplets"),
    benchmark:
        paths.benchmark("mine_triplets")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=model_job_gpus,
    params:
        miner=reference_model_settings("datasets.miner_model"),
        hard_negatives=config["datasets"]["hard_negatives"],
        query_kinds=aec.training_query_kinds(config),
        languages=config["clean"]["languages"],
        max_pairs=config["datasets"]["max_pairs"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow/scripts/mine_triplets.py"


rule build_query_sets:
    input:
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
        item_list=rules.search_archive.output.item_list,
    output:
        query_sets=directory(paths.QUERY_SETS),
    log:
        paths.log("datasets", "build_query_sets"),
    benchmark:
        paths.benchmark("build_query_sets")
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
