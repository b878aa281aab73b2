# Tables and the record: Table 1, the checked claims, the scale ablation, the classifiers' accuracies and
# the run record, all torch-free. report() puts each in `snakemake --report`.

GRID_METRICS = plan.cell_paths(METRICS, "grid")  # also read by rules/figures.smk


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
