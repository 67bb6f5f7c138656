# Fine-tuning matrix: every candidate model x method (minus `exclude`), with its cost recorded; the
# teachers' outputs are cached in jobs of their own (a cluster gives them a GPU too).


rule teacher_embeddings:
    input:
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
        triplets=rules.mine_triplets.output.triplets,
        triplets_meta=rules.mine_triplets.output.meta,
        miner_embeddings=rules.mine_triplets.output.embeddings,
    output:
        embeddings=ensure(paths.TEACHER_EMBEDDINGS, non_empty=True),
        meta=paths.DATASET_META["teacher_embeddings"],
    log:
        paths.log("train", "teacher_embeddings/{teacher}"),
    benchmark:
        paths.benchmark("teacher_embeddings", "{teacher}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=16000,
        runtime=240,
        gpu=teacher_job_gpus,
    params:
        teacher=teacher_settings,
        max_pairs=config["datasets"]["max_pairs"],
        seed=config["seed"],
        device=config["device"],
    script:
        "../workflow/scripts/teacher_embeddings.py"


rule teacher_scores:
    input:
        triplets=rules.mine_triplets.output.triplets,
        triplets_meta=rules.mine_triplets.output.meta,
        miner_embeddings=rules.mine_triplets.output.embeddings,
    output:
        scores=ensure(paths.TEACHER_SCORES, non_empty=True),
        meta=paths.DATASET_META["teacher_scores"],
    log:
        paths.log("train", "teacher_scores/{teacher}"),
    benchmark:
        paths.benchmark("teacher_scores", "{teacher}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=16000,
        runtime=240,
        gpu=teacher_job_gpus,
    params:
        teacher=teacher_settings,
        device=config["device"],
    script:
        "../workflow/scripts/teacher_scores.py"


rule train_model:
    input:
        unpack(training_inputs),
    output:
        model=directory(paths.MODEL),
    log:
        paths.log("train", "{model}/{method}"),
    benchmark:
        paths.benchmark("train_model", "{model}/{method}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=training_mem_mb,
        runtime=720,
        gpu=training_gpus,
    params:
        model=model_settings,
        method=method_settings,
        validation=validation_settings,
        seed=run_seed,
        device=config["device"],
    script:
        "../workflow/scripts/train_model.py"
