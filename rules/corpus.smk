# Clean and chunk, shard by shard: OCR clean-up, language id, quality filter, MinHash signatures ->
# documents -> token chunks; duplicates and clusters once, over every shard's signatures; one manifest
# that later stages read the corpus through (archive_encoders.corpus).


localrules:
    assign_shards,
    corpus_manifest,


checkpoint assign_shards:
    input:
        item_list=rules.search_archive.output.item_list,
        downloads=rules.download_archive.output.downloads,
    output:
        # update(): not emptied before a rerun, which rewrites only the lists whose items changed, so
        # the jobs of an untouched shard find their input older than their outputs and do not rerun
        shard_items=update(directory(paths.SHARD_ITEMS_DIR)),
    log:
        paths.log("corpus", "assign_shards"),
    benchmark:
        paths.benchmark("assign_shards")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        items_per_shard=config["corpus"]["items_per_shard"],
        ledger=paths.SHARD_LEDGER,
    script:
        "../workflow/scripts/assign_shards.py"


rule clean_shard:
    input:
        shard_items=paths.SHARD_ITEMS,
    output:
        documents=ensure(paths.SHARD_DOCUMENTS, non_empty=True),
        rejected=paths.SHARD_REJECTED,
        signatures=paths.SHARD_SIGNATURES,
    log:
        paths.log("corpus", "clean_shard/{shard}"),
    benchmark:
        paths.benchmark("clean_shard", "{shard}")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        clean=clean_shard_settings(),
        archive=archive_location_settings(),
    script:
        "../workflow/scripts/clean_shard.py"


rule dedupe_corpus:
    input:
        signatures=every_shard(rules.clean_shard.output.signatures),
    output:
        dedupe=ensure(paths.DEDUPE, non_empty=True),
    log:
        paths.log("corpus", "dedupe_corpus"),
    benchmark:
        paths.benchmark("dedupe_corpus")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        dedupe=dedupe_settings(),
    script:
        "../workflow/scripts/dedupe_corpus.py"


rule chunk_shard:
    input:
        documents=rules.clean_shard.output.documents,
    output:
        chunks=ensure(paths.SHARD_CHUNKS, non_empty=True),
    log:
        paths.log("corpus", "chunk_shard/{shard}"),
    benchmark:
        paths.benchmark("chunk_shard", "{shard}")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        chunk=config["chunk"],
        tokenizer=reference_model_settings("chunk.tokenizer_model"),
    script:
        "../workflow/scripts/chunk_shard.py"


rule corpus_manifest:
    input:
        documents=every_shard(rules.clean_shard.output.documents),
        rejected=every_shard(rules.clean_shard.output.rejected),
        signatures=every_shard(rules.clean_shard.output.signatures),
        chunks=every_shard(rules.chunk_shard.output.chunks),
        dedupe=rules.dedupe_corpus.output.dedupe,
    output:
        manifest=ensure(paths.CORPUS, non_empty=True),
    log:
        paths.log("corpus", "corpus_manifest"),
    benchmark:
        paths.benchmark("corpus_manifest")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        shards=shard_names,
    script:
        "../workflow/scripts/corpus_manifest.py"
