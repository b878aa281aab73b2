from gradcheck.trace_quantities import BY_NAME as TRACE


# Aggregates: Table 1, the checked claims, the gradient-trace figures, sample grids, the
# scale ablation and the classifier accuracies. report() puts each in `snakemake --report`.

GRID_METRICS = plan.cell_paths(METRICS, "grid")


rule table1:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        GRID_METRICS,
    output:
        csv=report("results/table1.csv", caption=CAPTIONS + "table1.rst", category="1. Table 1 and claims"),
        md="results/table1.md",
        tex="results/table1.tex",
    log:
        "results/logs/table1.log",
    benchmark:
        "results/benchmarks/table1.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck table --metrics {input} --out {output.csv} 2> {log}"


rule findings:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        table=rules.table1.output.csv,
        metrics=GRID_METRICS,  # per-sample outcomes: the paired verdicts
        classifiers="results/classifiers.csv",  # the instrument check
        sensitivity=["results/sensitivity.csv"] if config.get("sensitivity") else [],
    output:
        report("results/findings.md", caption=CAPTIONS + "findings.rst", category="1. Table 1 and claims"),
    log:
        "results/logs/findings.log",
    benchmark:
        "results/benchmarks/findings.tsv"
    conda:
        ENV
    params:
        sensitivity=lambda w, input: f"--sensitivity {input.sensitivity}" if input.sensitivity else "",
        flags=cli_flags(n_boot=config["metrics"]["n_boot"], fit_accuracy=config["metrics"]["fit_accuracy"]),
    shell:
        "python -m gradcheck findings --table {input.table} --metrics {input.metrics} "
        "--classifiers {input.classifiers} {params.flags} {params.sensitivity} --out {output} 2> {log}"


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
# run has it at their settings (gradcheck/plan.py's history_cell).
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
    log:
        "results/logs/headline_figure.log",
    benchmark:
        "results/benchmarks/headline_figure.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-headline --metrics {input.metrics} --ddpm {input.ddpm} {params.earlier} "
        "{params.history} --out {output} 2> {log}"


rule scale_ablation:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        plan.cell_paths(METRICS, "ablation"),
    output:
        csv=report("results/scale_ablation.csv", caption=CAPTIONS + "ablation.rst", category="4. Scale ablation"),
        figure=report(
            "results/figures/scale_ablation.png", caption=CAPTIONS + "ablation.rst", category="4. Scale ablation"
        ),
    log:
        "results/logs/scale_ablation.log",
    benchmark:
        "results/benchmarks/scale_ablation.tsv"
    conda:
        ENV
    shell:
        "(python -m gradcheck table --metrics {input} --out {output.csv} && "
        "python -m gradcheck figure-ablation --metrics {input} --out {output.figure} "
        "--title 'guidance scale ablation (appendix C.1)') 2> {log}"


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


CLASSIFIERS = plan.classifiers()


rule classifier_summary:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        [path.replace(".pt", ".json") for path in CLASSIFIERS.values()],
    output:
        csv="results/classifiers.csv",
        figure=report(
            "results/figures/classifiers.png", caption=CAPTIONS + "classifiers.rst", category="5. Classifiers and data"
        ),
    params:
        reports=" ".join(f"{name}={path.replace('.pt', '.json')}" for name, path in CLASSIFIERS.items()),
    log:
        "results/logs/classifiers.log",
    benchmark:
        "results/benchmarks/classifiers.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-classifiers --report {params.reports} "
        "--figure {output.figure} --csv {output.csv} 2> {log}"


# The unconditional DDPM's own quality, apart from any guide: the judge's class mix and the
# FID of s = 0 samples (the cells' seeds) at every training snapshot and the final weights,
# for every replicate's DDPM; results/ddpm.csv has one row per replicate and snapshot.
rule ddpm_quality:
    input:
        ddpm=lambda w: plan.ddpm_path(replicate=rep_index(w.rep)),
        judge=JUDGE,
        features=plan.fid_inputs(),
        data=plan.data,
    output:
        "results/ddpm_quality/ddpm{rep}.csv",
    params:
        flags=lambda w: cli_flags(
            seeds=replicate_seeds(config["sampling"]["seeds"], rep_index(w.rep)),
            num_samples=config["sampling"]["num_samples"],
            batch_size=config["sampling"]["batch_size"],
            # what can change an unguided cell's samples (steps, UNet dtype): the same here
            **relevant_settings({"scale": 0}, plan.settings["default"]),
            confidence=config["metrics"]["confidence"],
        ),
        # FID on the feature network's pooled features (the judge's where FID uses Inception: ddpm-quality has
        # no Inception path), the class mix under the judge
        features=f"--feature-classifier {FEATURES}" if config["metrics"]["fid_features"] == "features" else "",
        runtime=RUNTIME,
    threads: JOB_THREADS
    resources:
        gpu=JOB_GPUS,
    log:
        "results/logs/ddpm_quality{rep}.log",
    benchmark:
        "results/benchmarks/ddpm_quality{rep}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck ddpm-quality --ddpm {input.ddpm} --judge {input.judge} {params.features} "
        "--data {input.data} {params.flags} --csv {output} {params.runtime} --threads {threads} 2> {log}"


rule ddpm_summary:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        [f"results/ddpm_quality/ddpm{rep_suffix(r)}.csv" for r in plan.replicates],
    output:
        csv="results/ddpm.csv",
        figure=report(
            "results/figures/ddpm_quality.png", caption=CAPTIONS + "ddpm_quality.rst", category="5. Classifiers and data"
        ),
    log:
        "results/logs/ddpm_summary.log",
    benchmark:
        "results/benchmarks/ddpm_summary.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck ddpm-summary --csv {input} --out {output.csv} --figure {output.figure} 2> {log}"


rule run_record:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        models=list(plan.run_models().values()),
        samples=[path for c in plan.all_cells() for path in plan.replicate_files(SAMPLES, c)],
    output:
        "results/run_record.json",
    params:
        config=json.dumps(config, sort_keys=True),
        commit=GIT_COMMIT,  # a new commit reruns this record, and nothing else
        repo=workflow.basedir,
        # each model's content hash, and whether it was trained here or brought
        models=" ".join(f"{name}={path}" for name, path in plan.run_models().items()),
        # the job records of the trained models (train-classifier's JSON beside each .pt) and of the samples
        replicates=json.dumps(plan.replicate_record()),
        jobs=lambda w, input: " ".join([p.replace(".pt", ".json") if p.endswith(".pt") else p for p in input.models]
                                       + list(input.samples)),
    log:
        "results/logs/run_record.log",
    benchmark:
        "results/benchmarks/run_record.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck record --config-json {params.config:q} --repo {params.repo} "
        "--jobs {params.jobs} --models {params.models} --replicates-json {params.replicates:q} --out {output} 2> {log}"
