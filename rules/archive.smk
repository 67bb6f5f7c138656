# Download stage: archive.org search -> item list -> text files (md5-checked, cached, resumable).
# Both rules need the internet, which compute nodes often lack: they run on the submit host.


localrules:
    search_archive,
    download_archive,


rule search_archive:
    output:
        item_list=ensure("results/corpus/items.parquet", non_empty=True),
    log:
        "logs/corpus/search_archive.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        archive=archive_search_settings(),
    script:
        "../workflow/scripts/search_archive.py"


rule download_archive:
    input:
        item_list=rules.search_archive.output.item_list,
    output:
        downloads=ensure("results/corpus/downloads.parquet", non_empty=True),
    log:
        "logs/corpus/download_archive.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        max_file_mb=config["archive"]["max_file_mb"],
        cache_dir="resources/archive",
    script:
        "../workflow/scripts/download_archive.py"
