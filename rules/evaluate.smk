# Evaluation: retrieval quality (with bootstrap CIs) and STS per variant; latency per model x method.


rule evaluate_variant:
    input:
        model=evaluated_model,
        queries=rules.retrieval_set.output.queries,
        corpus=rules.retrieval_set.output.corpus,
        qrels=rules.retrieval_set.output.qrels,
        sts=[sts["path"] for sts in config["evaluate"]["sts"]],
    output:
        metrics=paths.EVAL,
    log:
        "logs/evaluate/{model}/{method}/{variant}.log",
    conda:
        "../envs/workflow.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model=model_settings,
        evaluate=config["evaluate"],
        seed=config["seed"],
    script:
        "../workflow/scripts/evaluate_variant.py"


rule measure_latency:
    input:
        **{kind: paths.ARTEFACTS[kind] for kind in ARTEFACT_KINDS},
        queries=rules.retrieval_set.output.queries,
        corpus=rules.retrieval_set.output.corpus,
    output:
        **{variant: paths.LATENCY.replace("{variant}", variant) for variant in VARIANTS},
    log:
        "logs/latency/{model}/{method}.log",
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
