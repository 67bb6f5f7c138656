# Download stage: archive.org search -> item list -> text files (md5-checked, cached, resumable).
# Both rules need the internet, which compute nodes often lack: they run on the submit host.
from archive_encoders import paths


localrules:
    search_archive,
    download_archive,


rule search_archive:
    output:
        item_list=ensure(paths.ITEMS, non_empty=True),
    log:
        paths.log("corpus", "search_archive"),
    benchmark:
        paths.benchmark("search_archive")
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
        downloads=ensure(paths.DOWNLOADS, non_empty=True),
    log:
        paths.log("corpus", "download_archive"),
    benchmark:
        paths.benchmark("download_archive")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        max_file_mb=config["archive"]["max_file_mb"],
        max_total_gb=config["archive"]["max_total_gb"],
        cache_dir=paths.ARCHIVE_CACHE,
    script:
        "../workflow/scripts/download_archive.py"
