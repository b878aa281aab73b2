# The stabiliser study (configs/stabilisers.yaml; not in the default run): ADAM over a grid of betas, nrCG's
# EMA and the three papers' named readings, each a grid cell at the grid's scale (sampled and evaluated by
# rules/sample.smk, shared with Table 1 where they coincide), paired with no stabiliser from the same noise.
#   snakemake results/stabilisers.csv --configfile configs/stabilisers.yaml --cores all

from gradcheck.plan import STABILISER_OUTPUTS
from gradcheck.trace_quantities import BY_NAME as TRACE


rule stabilisers:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        lambda w: [METRICS.format(**c) for c in plan.stabiliser_cells()],
    output:
        csv=report(STABILISER_OUTPUTS[0], caption=CAPTIONS + "stabilisers.rst", category="9. Stabilisers"),
        figure=report(STABILISER_OUTPUTS[1], caption=CAPTIONS + "stabilisers.rst", category="9. Stabilisers"),
        answers=STABILISER_OUTPUTS[2],
    params:
        flags=cli_flags(n_boot=config["metrics"]["n_boot"], confidence=config["metrics"]["confidence"]),
        title=f"stabilisers at s = {plan.scale}: judge accuracy and its paired change against none",
    log:
        "results/logs/stabilisers.log",
    benchmark:
        "results/benchmarks/stabilisers.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck stabilisers-table --metrics {input} {params.flags} --title {params.title:q} "
        "--out {output.csv} --figure {output.figure} --answers {output.answers} 2> {log}"


# Staleness and spread over the sampling steps: the paper's ADAM against none, for each study guide and look.
rule stabiliser_trace:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        lambda w: [path for c in plan.stabiliser_cells(["none", "adam"]) for path in plan.replicate_files(SAMPLES, c)],
    output:
        report("results/figures/stabilisers_{quantity}.png", caption=CAPTIONS + "trace.rst",
               category="9. Stabilisers", subcategory="{quantity}"),
    params:
        groups=lambda w: plan.stabiliser_groups(["none", "adam"])[0],
        classifiers=lambda w: plan.stabiliser_groups(["none", "adam"])[1],
        title=lambda w: f"{TRACE[w.quantity].title}: the paper's ADAM against none, s = {plan.scale}",
        caption=lambda w: TRACE[w.quantity].description,
    wildcard_constraints:
        quantity="staleness|spread",
    log:
        "results/logs/stabilisers_{quantity}.log",
    benchmark:
        "results/benchmarks/stabilisers_{quantity}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-trace --quantity {wildcards.quantity} --samples {params.groups} "
        "--classifiers {params.classifiers} --title {params.title:q} --out {output} 2> {log}"
