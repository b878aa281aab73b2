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
include: "rules/figures.smk"
include: "rules/traces.smk"
include: "rules/quality.smk"
include: "rules/sensitivity.smk"
include: "rules/methods.smk"
include: "rules/spread.smk"
include: "rules/stabilisers.smk"


# Tables, figures and the record are torch-free and take seconds: each such rule says `localrule: True`,
# so under a cluster executor it runs on the submitting host rather than wait in the queue.
rule all:
    localrule: True
    input:
        plan.all_outputs(),
    default_target: True
