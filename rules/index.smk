# The search index: the report's recommended retriever over the whole corpus (usearch HNSW for the dense
# variant, BM25 beside it, the hybrid's fusion), measured.
# A cluster job like any other: encoding the corpus is the heavy part.


rule build_index:
    input:
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
