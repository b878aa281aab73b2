# The methods study: every preset of config["methods"] (a training-free guidance method as settings
# of the one guided step) with each stabiliser, beside the robust x_t baseline, sampled from the same
# seeds and scored as the grid is: results/methods.csv and its figure, judge accuracy against compute.

from gradcheck.plan import METHOD_CELL, METHOD_METRICS, METHOD_SAMPLES


wildcard_constraints:
    preset="[A-Za-z][A-Za-z0-9_-]*",


# sample_cell's command with the look (x_t or x0-hat) among the preset's flags, not a wildcard of the path:
# sharing sample_cell's command would change it, and Snakemake would resample every user's grid.
rule sample_method_cell:
    input:
        ddpm=lambda w: plan.ddpm_path(replicate=rep_index(w.rep)),
        classifier=lambda w: plan.method_guide(w.preset, rep_index(w.rep)),
        judge=JUDGE,
        reference=lambda w: plan.reference_path(replicate=rep_index(w.rep)),
    output:
        METHOD_SAMPLES,
    params:
        flags=lambda w: plan.method_flags(w.preset, w.stabiliser, rep_index(w.rep)),
        runtime=RUNTIME,
    threads: JOB_THREADS
    resources:
        gpu=JOB_GPUS,
    log:
        "results/logs/methods/sample/" + METHOD_CELL + "{rep}.log",
    benchmark:
        "results/benchmarks/methods/sample/" + METHOD_CELL + "{rep}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck sample --ddpm {input.ddpm} --classifier {input.classifier} --judge {input.judge} "
        "--reference {input.reference} --scale {wildcards.scale} --stabiliser {wildcards.stabiliser} "
        "{params.flags} --out {output} {params.runtime} --threads {threads} 2> {log}"


use rule evaluate_cell as evaluate_method_cell with:
    input:
        samples=lambda w: plan.replicate_files(METHOD_SAMPLES, w),
        classifier=lambda w: [plan.method_guide(w.preset, r) for r in plan.replicates],
        judge=JUDGE,
        features=plan.fid_inputs(),
        data=plan.data,
    output:
        METHOD_METRICS,
    params:
        fid=plan.fid_options(),
        flags=lambda w: plan.evaluate_flags(plan.methods["num_samples"]),
        label=lambda w: plan.method_role(w.preset),
    log:
        "results/logs/methods/evaluate/" + METHOD_CELL + ".log",
    benchmark:
        "results/benchmarks/methods/evaluate/" + METHOD_CELL + ".tsv"


rule methods:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        lambda w: [METHOD_METRICS.format(**c) for c in plan.method_cells()],
    output:
        csv=report("results/methods.csv", caption=CAPTIONS + "methods.rst", category="7. Methods"),
        figure=report("results/figures/methods.png", caption=CAPTIONS + "methods.rst", category="7. Methods"),
    params:
        cells=lambda w: " ".join(plan.method_metrics()),
        own=lambda w: " ".join(plan.own_scale_presets()),
        flags=cli_flags(n_boot=config["metrics"]["n_boot"], confidence=config["metrics"]["confidence"]),
    log:
        "results/logs/methods.log",
    benchmark:
        "results/benchmarks/methods.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck methods-table --cells {params.cells} --own-scales {params.own} {params.flags} "
        "--out {output.csv} --figure {output.figure} 2> {log}"
