# ONNX export: FP32 graph with pooling and L2-norm inside, INT8 quantized, fidelity-gated vs torch.


rule export_onnx:
    input:
        model=rules.train_model.output.model,
        chunks=rules.chunk_documents.output.chunks,
    output:
        onnx=directory(paths.ONNX),
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
