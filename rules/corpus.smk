# Clean and chunk: OCR clean-up, language id, quality filter, dedupe -> documents -> token chunks.


rule clean_documents:
    input:
        item_list=rules.search_archive.output.item_list,
        downloads=rules.download_archive.output.downloads,
    output:
        documents=ensure("results/corpus/documents.parquet", non_empty=True),
        rejected="results/corpus/rejected.parquet",
    log:
        "logs/corpus/clean_documents.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        clean=config["clean"],
        archive=archive_search_settings(),  # where downloads.parquet paths lie (local_dir's parent)
    script:
        "../workflow/scripts/clean_documents.py"


rule chunk_documents:
    input:
        documents=rules.clean_documents.output.documents,
    output:
        chunks=ensure("results/corpus/chunks.parquet", non_empty=True),
    log:
        "logs/corpus/chunk_documents.log",
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
        "../workflow/scripts/chunk_documents.py"
