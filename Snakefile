# archive-encoders: find and fine-tune the best sentence encoder for search over archive.org texts.
#
#   archive.org ─► corpus ─► datasets ─► train ─► export ─► evaluate ─► report ─► index
#                                                              └─► judging (people judge; the export is a set)
#
# Each stage is a named target (`snakemake --cores N corpus`, ...); with no target it runs everything.
# Paths are relative to the working directory (--directory); the config is validated before any job.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/archive.smk"
include: "rules/corpus.smk"
include: "rules/datasets.smk"
include: "rules/train.smk"
include: "rules/export.smk"
include: "rules/evaluate.smk"
include: "rules/judging.smk"
include: "rules/report.smk"
include: "rules/index.smk"


localrules:
    all,
    corpus,
    datasets,
    train,
    export,
    evaluate,
    judging,
    report,
    index,


rule all:
    default_target: True
    input:
        rules.build_report.output,
        rules.build_index.output,


rule corpus:
    input:
        rules.corpus_manifest.output,


rule datasets:
    input:
        rules.corpus.input,
        rules.tsdae_pairs.output,
        rules.mine_triplets.output,
        rules.build_query_sets.output,


rule train:
    input:
        trained_models(),


rule export:
    input:
        exports(),


rule evaluate:
    input:
        rules.compare_retrievers.output,
        latency_measurements(),


# not part of `all`: a team's queries (judging.queries) pooled for people to judge
rule judging:
    input:
        rules.pool_judging.output.pool,


rule report:
    input:
        rules.build_report.output,


rule index:
    input:
        rules.build_index.output,
