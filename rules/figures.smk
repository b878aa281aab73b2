# Figures of the grid's outcomes: every replicate per cell, the headline cell against the DDPMs, the sample
# grids and the variants side by side. Torch-free.


rule replicate_figure:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        GRID_METRICS,
    output:
        report("results/figures/replicates.png", caption=CAPTIONS + "replicates.rst", category="1. Table 1 and claims"),
    params:
        title=f"every training replicate's value per cell, s = {plan.scale}",
    log:
        "results/logs/replicate_figure.log",
    benchmark:
        "results/benchmarks/replicate_figure.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-replicates --metrics {input} --title {params.title:q} --out {output} 2> {log}"


# The earlier default DDPMs' headline cell (docs/data/headline_by_ddpm.csv) joins this run's where the
# run has it at their settings (gradcheck/plan_studies.py's history_cell).
HISTORY = plan.history_cell()


rule headline_figure:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        metrics=plan.headline_metrics(),
        # the earlier DDPMs were measured unclipped: where the grid clips, the study's variant that does not
        history=[HISTORY[0]] if HISTORY and HISTORY[1] else [],
        ddpm="results/ddpm.csv",
        earlier=[f"{workflow.basedir}/docs/data/headline_by_ddpm.csv"] if HISTORY else [],
    output:
        report("results/figures/headline_vs_ddpm.png", caption=CAPTIONS + "headline_vs_ddpm.rst",
               category="5. Classifiers and data"),
    params:
        earlier=lambda w, input: f"--earlier {input.earlier}" if input.earlier else "",
        history=lambda w, input: f"--history-metrics {input.history} --variant {HISTORY[1]}" if input.history else "",
        ddpm_of=" ".join(str(plan.ddpm_replicate(r)) for r in plan.replicates),  # the DDPM each replicate sampled with
    log:
        "results/logs/headline_figure.log",
    benchmark:
        "results/benchmarks/headline_figure.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-headline --metrics {input.metrics} --ddpm {input.ddpm} --ddpm-of {params.ddpm_of} "
        "{params.earlier} {params.history} --out {output} 2> {log}"


rule sample_grid:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        lambda w: plan.replicate_files(SAMPLES, w),
    output:
        report(
            f"results/figures/grids/{CELL_NAME}.png",
            caption=CAPTIONS + "grid.rst",
            category="3. Samples",
            subcategory="every cell",
        ),
    log:
        f"results/logs/grids/{CELL_NAME}.log",
    benchmark:
        f"results/benchmarks/grids/{CELL_NAME}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-grid --samples {input} --out {output} 2> {log}"


rule variant_panel:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        lambda w: plan.grid_samples(w.classifier),
    output:
        report(
            "results/figures/samples_{classifier}.png",
            caption=CAPTIONS + "samples_classifier.rst",
            category="3. Samples",
            subcategory="variants side by side",
        ),
    params:
        groups=lambda w: plan.grid_groups(w.classifier),
        title=lambda w: f"{w.classifier} classifier guiding towards {config['sampling']['target']}, "
        f"s = {plan.scale}",
    log:
        "results/logs/samples_{classifier}.log",
    benchmark:
        "results/benchmarks/samples_{classifier}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-panel --samples {params.groups} --title {params.title:q} --out {output} 2> {log}"
