# The search index: the report's recommended retriever over the whole corpus (usearch HNSW for the dense
# variant, BM25 beside it, the hybrid's fusion), measured. The corpus is encoded one job per shard (a GPU
# where the variant runs on PyTorch), so a wider corpus encodes only its new shards; the build streams
# those vectors in.


rule encode_shard:
    input:
        chunks=paths.SHARD_CHUNKS,
        artefact=variant_artefact,
    output:
        **paths.SHARD_EMBEDDINGS,
    log:
        paths.log("embeddings", "{model}/{method}/{variant}/{shard}"),
    benchmark:
        paths.benchmark("encode_shard", "{model}/{method}/{variant}/{shard}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=shard_encoding_gpus,
    params:
        model=model_settings,
        batch_size=config["index"]["batch_size"],
        device=config["device"],
    script:
        "../workflow/scripts/encode_shard.py"


rule build_index:
    input:
        unpack(index_embeddings),
        recommendation=rules.build_report.output.recommendation,
        corpus=rules.corpus_manifest.output.manifest,
    output:
        index=directory(paths.INDEX_DIR),
        report=paths.INDEX_REPORT,
    log:
        paths.log("index", "build_index"),
    benchmark:
        paths.benchmark("build_index")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        index=config["index"],
        seed=config["seed"],
        languages=config["clean"]["languages"],
    script:
        "../workflow/scripts/build_index.py"
