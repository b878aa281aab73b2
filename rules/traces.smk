from gradcheck.trace_quantities import BY_NAME as TRACE


# The gradient trace over the sampling steps (gradcheck/trace_quantities.py): the paper's cosine figures and
# one figure per drawn quantity. Torch-free.


rule cosine_figure:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        lambda w: plan.grid_samples(w.classifier),
    output:
        report(
            "results/figures/cosine_{classifier}.png",
            caption=CAPTIONS + "cosine_classifier.rst",
            category="2. Gradient diagnostics",
            subcategory="consecutive-step cosine",
        ),
    params:
        groups=lambda w: plan.grid_groups(w.classifier),
        classifiers=lambda w: plan.grid_classifiers(w.classifier),
        title=lambda w: f"{w.classifier} classifier, s = {plan.scale}: "
        "consecutive-step cosine of the guidance",
    log:
        "results/logs/cosine_{classifier}.log",
    benchmark:
        "results/benchmarks/cosine_{classifier}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-trace --quantity cosine --samples {params.groups} --classifiers {params.classifiers} "
        "--title {params.title:q} --out {output} 2> {log}"


rule trace_figure:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        plan.grid_samples(),
    output:
        report(
            "results/figures/trace_{quantity}.png",
            caption=CAPTIONS + "trace.rst",
            category="2. Gradient diagnostics",
            subcategory="{quantity}",
        ),
    params:
        groups=plan.grid_groups(),
        classifiers=plan.grid_classifiers(),
        title=lambda w: f"{TRACE[w.quantity].title}, s = {plan.scale}",
        caption=lambda w: TRACE[w.quantity].description,  # read by captions/trace.rst
    log:
        "results/logs/trace_{quantity}.log",
    benchmark:
        "results/benchmarks/trace_{quantity}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-trace --quantity {wildcards.quantity} --samples {params.groups} "
        "--classifiers {params.classifiers} --title {params.title:q} --out {output} 2> {log}"


BASELINE_GROUPS = plan.baseline_groups()


rule cosine_baseline:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        [path for group in BASELINE_GROUPS for path in group.split(",")],
    output:
        report(
            "results/figures/cosine_baseline.png",
            caption=CAPTIONS + "cosine_baseline.rst",
            category="2. Gradient diagnostics",
            subcategory="consecutive-step cosine",
        ),
    params:
        groups=BASELINE_GROUPS,
        labels=config["grid"]["classifiers"],
        title="robust vs non-robust guidance without modifications (figure 1), "
        f"s = {plan.scale}",
    log:
        "results/logs/cosine_baseline.log",
    benchmark:
        "results/benchmarks/cosine_baseline.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-cosine --samples {params.groups} --labels {params.labels} "
        "--title {params.title:q} --out {output} 2> {log}"
