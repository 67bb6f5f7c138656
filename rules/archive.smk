# Download stage: archive.org search -> item list -> text files (md5-checked, cached, resumable).
# Both rules need the internet, which compute nodes often lack: they run on the submit host.


localrules:
    search_archive,
    download_archive,


rule search_archive:
    output:
        item_list=ensure("results/corpus/items.parquet", non_empty=True),
    params:
        archive=archive_search_settings(),
    log:
        "logs/corpus/search_archive.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    script:
        "../workflow/scripts/search_archive.py"


rule download_archive:
    input:
        item_list=rules.search_archive.output.item_list,
    output:
        downloads=ensure("results/corpus/downloads.parquet", non_empty=True),
    params:
        max_file_mb=config["archive"]["max_file_mb"],
        cache_dir="resources/archive",
    log:
        "logs/corpus/download_archive.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    script:
        "../workflow/scripts/download_archive.py"
