# Exports of every trained model: ONNX FP32 + INT8 (fidelity-gated vs torch), OpenVINO INT8 (NNCF, gated
# vs ONNX FP32), static token embeddings (model2vec format), those trained further on the triplets
# (static-trained). Calibration reads train-split chunks only.


rule export_onnx:
    input:
        model=rules.train_model.output.model,
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
    output:
        onnx=directory(paths.ONNX),
    log:
        paths.log("export", "{model}/{method}"),
    benchmark:
        paths.benchmark("export_onnx", "{model}/{method}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model=model_settings,
        export=config["export"],
        seed=config["seed"],
    script:
        "../workflow/scripts/export_onnx.py"


rule export_openvino:
    input:
        onnx=rules.export_onnx.output.onnx,
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
    output:
        openvino=directory(paths.OPENVINO),
    log:
        paths.log("export", "{model}/{method}.openvino"),
    benchmark:
        paths.benchmark("export_openvino", "{model}/{method}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        model=model_settings,
        openvino=config["openvino"],
        gate=fidelity_gate_settings(),
        seed=config["seed"],
    script:
        "../workflow/scripts/export_openvino.py"


rule export_static:
    input:
        unpack(static_inputs),
    output:
        static=directory(paths.STATIC),
    log:
        paths.log("export", "{model}/{method}.static"),
    benchmark:
        paths.benchmark("export_static", "{model}/{method}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        model=model_settings,
        static=config["static"],
    script:
        "../workflow/scripts/export_static.py"


rule export_static_trained:
    input:
        static=rules.export_static.output.static,
        triplets=rules.mine_triplets.output.triplets,
        corpus=rules.corpus_manifest.output.manifest,
        splits=rules.split_documents.output.splits,
    output:
        static_trained=directory(paths.STATIC_TRAINED),
    log:
        paths.log("export", "{model}/{method}.static_trained"),
    benchmark:
        paths.benchmark("export_static_trained", "{model}/{method}")
    conda:
        "../envs/workflow.yaml"
    threads: config["job_threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        static_trained=config["static_trained"],
        seed=config["seed"],
    script:
        "../workflow/scripts/export_static_trained.py"
