# Report: summary tables, cost per method, INT8 vs FP32, the quality x latency Pareto plot.


localrules:
    summarize,


rule summarize:
    input:
        models=trained_models(),
        onnx=onnx_exports(),
        evaluations=evaluations(),
        latency=latency_measurements(),
        chunks=rules.corpus_manifest.output.manifest,  # the corpus, read by report.corpus_size
    output:
        summary_parquet="results/report/summary.parquet",
        summary_csv=report(
            "results/report/summary.csv",
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        summary_md="results/report/summary.md",
        cost=report(
            "results/report/cost.csv",
            caption="../workflow/report/cost.rst",
            category="Cost",
        ),
        int8=report(
            "results/report/int8_vs_fp32.csv",
            caption="../workflow/report/int8.rst",
            category="Quantization",
        ),
        pareto_png=report(
            "results/report/pareto.png",
            caption="../workflow/report/pareto.rst",
            category="Pareto",
        ),
        pareto_svg="results/report/pareto.svg",
        report_md="results/report/report.md",
    log:
        "logs/report/summarize.log",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        export=config["export"],
    script:
        "../workflow/scripts/summarize.py"
