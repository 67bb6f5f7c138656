# Evaluation: every variant of each model x method on every query set (one job, models loaded once),
# BM25 on the same sets, the comparison with hybrids and paired differences; latency per model x method.


rule import_user_set:
    input:
        source=user_set_files,
    output:
        query_set=directory(paths.USER_QUERY_SET),
    log:
        paths.log("evaluate", "import_user_set/{retrieval_set}"),
    benchmark:
        paths.benchmark("import_user_set", "{retrieval_set}")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        folder=user_set_folder,
    script:
        "../workflow/scripts/import_user_set.py"


rule evaluate_model:
    input:
        **artefact_inputs(),
        query_sets=rules.build_query_sets.output.query_sets,
        user_sets=user_query_sets(),
        judging_queries=judging_queries(),
        sts=[sts["path"] for sts in config["evaluate"]["sts"]],
        item_list=rules.search_archive.output.item_list,
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
    output:
        evaluation=directory(paths.EVAL_DIR),
    log:
        paths.log("evaluate", "{model}/{method}"),
    benchmark:
        paths.benchmark("evaluate_model", "{model}/{method}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        model=model_settings,
        artefacts=ARTEFACT_KINDS,
        variants=VARIANTS,
        evaluate=config["evaluate"],
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_model.py"


rule evaluate_lexical:
    input:
        query_sets=rules.build_query_sets.output.query_sets,
        user_sets=user_query_sets(),
        judging_queries=judging_queries(),
    output:
        evaluation=directory(paths.LEXICAL_EVAL_DIR),
    log:
        paths.log("evaluate", "bm25"),
    benchmark:
        paths.benchmark("evaluate_lexical")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        bootstrap_samples=config["evaluate"]["bootstrap_samples"],
        languages=config["clean"]["languages"],
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_lexical.py"


rule compare_retrievers:
    input:
        dense=evaluations(),
        lexical=rules.evaluate_lexical.output.evaluation,
        query_sets=rules.build_query_sets.output.query_sets,
        user_sets=user_query_sets(),
    output:
        comparison=directory(paths.COMPARISON),
    log:
        paths.log("evaluate", "compare_retrievers"),
    benchmark:
        paths.benchmark("compare_retrievers")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        bootstrap_samples=config["evaluate"]["bootstrap_samples"],
        seed=config["seed"],
    script:
        "../workflow/scripts/compare_retrievers.py"


rule measure_latency:
    input:
        **artefact_inputs(),
        query_sets=rules.build_query_sets.output.query_sets,
    output:
        **{variant: paths.LATENCY.replace("{variant}", variant) for variant in VARIANTS},
    log:
        paths.log("latency", "{model}/{method}"),
    benchmark:
        paths.benchmark("measure_latency", "{model}/{method}")
    conda:
        "../envs/workflow.yaml"
    threads: config["latency"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model=model_settings,
        artefacts=ARTEFACT_KINDS,
        latency=config["latency"],
        device=config["device"],
        seed=config["seed"],
    script:
        "../workflow/scripts/measure_latency.py"
