# Pooled judging: a team's queries ranked by every retriever in evaluation, the top `judging.depth` of
# each pooled for people to judge (`archive-encoders judge`); the export comes back as a decision set.


rule judging_queries:
    input:
        queries=team_queries_file,
    output:
        queries=paths.JUDGING_QUERIES,
    log:
        paths.log("judging", "judging_queries"),
    benchmark:
        paths.benchmark("judging_queries")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        typed=TYPED_QUERIES,  # a param, not an input: a new query reruns the pool, a new grade does not
    script:
        "../workflow/scripts/judging_queries.py"


rule pool_judging:
    input:
        queries=rules.judging_queries.output.queries,
        evaluations=evaluations(),
        lexical=rules.evaluate_lexical.output.evaluation,
        comparison=rules.compare_retrievers.output.comparison,
        query_sets=rules.build_query_sets.output.query_sets,
    output:
        pool=paths.JUDGING_POOL,
    log:
        paths.log("judging", "pool_judging"),
    benchmark:
        paths.benchmark("pool_judging")
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        depth=config["judging"]["depth"],
    script:
        "../workflow/scripts/pool_judging.py"
