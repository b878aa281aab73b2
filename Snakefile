# GradCheck: classifier-guidance gradient analysis, from data set to Table 1.
# This file is the table of contents; the rules live in rules/, the code in gradcheck/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "rules/captions/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/sample.smk"
include: "rules/report.smk"
include: "rules/sensitivity.smk"
include: "rules/methods.smk"


# Tables, figures and the record are torch-free and take seconds: under a cluster executor they run
# on the submitting host rather than wait in the queue. Training, sampling and evaluation are jobs.
localrules:
    all,
    table1,
    findings,
    replicate_figure,
    headline_figure,
    scale_ablation,
    cosine_figure,
    trace_figure,
    cosine_baseline,
    sample_grid,
    variant_panel,
    classifier_summary,
    ddpm_summary,
    run_record,
    sensitivity,
    methods,


rule all:
    input:
        plan.all_outputs(),
    default_target: True
