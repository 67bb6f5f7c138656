# ONNX export: FP32 graph with pooling and L2-norm inside, INT8 quantized, fidelity-gated vs torch.


rule export_onnx:
    input:
        model=rules.train_model.output.model,
        corpus=rules.corpus_manifest.output.manifest,
    output:
        onnx=directory("results/onnx/{model}/{method}"),
    log:
        "logs/export/{model}/{method}.log",
    conda:
        "../envs/workflow.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model=model_settings,
        export=config["export"],
        seed=config["seed"],
    script:
        "../workflow/scripts/export_onnx.py"
