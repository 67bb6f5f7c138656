# Report: the verdict (paired non-inferiority), per-set tables, variants, cost, probe, Pareto panels.


localrules:
    build_report,


# a checkpoint: the index's jobs (which variant encodes the corpus) are known once it has recommended one
checkpoint build_report:
    input:
        comparison=rules.compare_retrievers.output.comparison,
        models=trained_models(),
        exports=exports(),
        evaluations=evaluations(),
        lexical=rules.evaluate_lexical.output.evaluation,
        latency=latency_measurements(),
        query_sets=rules.build_query_sets.output.query_sets,
        user_sets=user_query_sets(),
        judging=judged_summary(),
        corpus=rules.corpus_manifest.output.manifest,
    output:
        summary_parquet=paths.REPORT_FILES["summary_parquet"],
        summary_csv=report(
            paths.REPORT_FILES["summary_csv"],
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        summary_md=paths.REPORT_FILES["summary_md"],
        cost=report(
            paths.REPORT_FILES["cost"],
            caption="../workflow/report/cost.rst",
            category="Cost",
        ),
        variants=report(
            paths.REPORT_FILES["variants"],
            caption="../workflow/report/variants.rst",
            category="Variants",
        ),
        probe=report(
            paths.REPORT_FILES["probe"],
            caption="../workflow/report/probe.rst",
            category="Metadata tasks",
        ),
        compression=report(
            paths.REPORT_FILES["compression"],
            caption="../workflow/report/compression.rst",
            category="Compression",
        ),
        pareto_png=report(
            paths.REPORT_FILES["pareto_png"],
            caption="../workflow/report/pareto.rst",
            category="Pareto",
        ),
        pareto_svg=paths.REPORT_FILES["pareto_svg"],
        report_md=paths.REPORT_FILES["report_md"],
        recommendation=paths.REPORT_FILES["recommendation"],
    log:
        paths.log("report", "build_report"),
    benchmark:
        paths.benchmark("build_report")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        report=config["report"],
        export=config["export"],
    script:
        "../workflow/scripts/build_report.py"
