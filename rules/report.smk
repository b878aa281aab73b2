# Aggregates: Table 1, the checked claims, the gradient-trace figures, sample grids, the
# scale ablation and the classifier accuracies. report() puts each in `snakemake --report`.

CAPTIONS = "captions/"
TRACE_QUANTITIES = ["grad_norm", "eps_cosine", "judge_confidence"]
TRACE_TITLES = {
    "grad_norm": "raw classifier-gradient norm over time",
    "eps_cosine": "cosine between the guidance direction and eps over time",
    "judge_confidence": "independent judge's confidence on x0-hat over time",
}


def grid_samples(classifier=None):
    return cell_paths(f"results/samples/{CELL}.npz", "grid", classifier)


def grid_classifiers(classifier=None):
    return [c["classifier"] for c in cells("grid") if classifier in (None, c["classifier"])]


rule table1:
    input:
        cell_paths(f"results/metrics/{CELL}.json", "grid"),
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
    input:
        table=rules.table1.output.csv,
        sensitivity=["results/sensitivity.csv"] if config.get("sensitivity") else [],
    output:
        report("results/findings.md", caption=CAPTIONS + "findings.rst", category="1. Table 1 and claims"),
    log:
        "results/logs/findings.log",
    benchmark:
        "results/benchmarks/findings.tsv"
    params:
        sensitivity=lambda w, input: f"--sensitivity {input.sensitivity}" if input.sensitivity else "",
    conda:
        ENV
    shell:
        "python -m gradcheck findings --table {input.table} "
        "{params.sensitivity} --out {output} 2> {log}"


rule scale_ablation:
    input:
        cell_paths(f"results/metrics/{CELL}.json", "ablation"),
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
    input:
        lambda w: grid_samples(w.classifier),
    output:
        report(
            "results/figures/cosine_{classifier}.png",
            caption=CAPTIONS + "cosine_classifier.rst",
            category="2. Gradient diagnostics",
            subcategory="consecutive-step cosine",
        ),
    params:
        classifiers=lambda w: grid_classifiers(w.classifier),
        title=lambda w: f"{w.classifier} classifier, s = {fmt_scale(config['grid']['scale'])}: "
        "consecutive-step cosine of the guidance",
    log:
        "results/logs/cosine_{classifier}.log",
    benchmark:
        "results/benchmarks/cosine_{classifier}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-trace --quantity cosine --samples {input} --classifiers {params.classifiers} "
        "--title {params.title:q} --out {output} 2> {log}"


rule trace_figure:
    input:
        grid_samples(),
    output:
        report(
            "results/figures/trace_{quantity}.png",
            caption=CAPTIONS + "trace.rst",
            category="2. Gradient diagnostics",
            subcategory="{quantity}",
        ),
    params:
        classifiers=grid_classifiers(),
        title=lambda w: f"{TRACE_TITLES[w.quantity]}, s = {fmt_scale(config['grid']['scale'])}",
    log:
        "results/logs/trace_{quantity}.log",
    benchmark:
        "results/benchmarks/trace_{quantity}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-trace --quantity {wildcards.quantity} --samples {input} "
        "--classifiers {params.classifiers} --title {params.title:q} --out {output} 2> {log}"


rule cosine_baseline:
    input:
        expand(
            "results/samples/{classifier}/x0-false_none_s-{scale}.npz",
            classifier=config["grid"]["classifiers"],
            scale=fmt_scale(config["grid"]["scale"]),
        ),
    output:
        report(
            "results/figures/cosine_baseline.png",
            caption=CAPTIONS + "cosine_baseline.rst",
            category="2. Gradient diagnostics",
            subcategory="consecutive-step cosine",
        ),
    params:
        labels=config["grid"]["classifiers"],
        title="robust vs non-robust guidance without modifications (figure 1), "
        f"s = {fmt_scale(config['grid']['scale'])}",
    log:
        "results/logs/cosine_baseline.log",
    benchmark:
        "results/benchmarks/cosine_baseline.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-cosine --samples {input} --labels {params.labels} "
        "--title {params.title:q} --out {output} 2> {log}"


rule sample_grid:
    input:
        f"results/samples/{CELL}.npz",
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
    input:
        lambda w: grid_samples(w.classifier),
    output:
        report(
            "results/figures/samples_{classifier}.png",
            caption=CAPTIONS + "samples_classifier.rst",
            category="3. Samples",
            subcategory="variants side by side",
        ),
    params:
        title=lambda w: f"{w.classifier} classifier guiding towards {config['sampling']['target']}, "
        f"s = {fmt_scale(config['grid']['scale'])}",
    log:
        "results/logs/samples_{classifier}.log",
    benchmark:
        "results/benchmarks/samples_{classifier}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-panel --samples {input} --title {params.title:q} --out {output} 2> {log}"


rule classifier_summary:
    input:
        robust="results/models/robust.json",
        nonrobust="results/models/nonrobust.json",
        judge="results/models/judge.json",
    output:
        csv="results/classifiers.csv",
        figure=report(
            "results/figures/classifiers.png", caption=CAPTIONS + "classifiers.rst", category="5. Classifiers and data"
        ),
    log:
        "results/logs/classifiers.log",
    benchmark:
        "results/benchmarks/classifiers.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-classifiers --report robust={input.robust} nonrobust={input.nonrobust} "
        "judge={input.judge} --figure {output.figure} --csv {output.csv} 2> {log}"


# The unconditional DDPM's own quality, apart from any guide: the judge's class mix and the
# FID of s = 0 samples (the cells' seeds) at every training snapshot and the final weights.
rule ddpm_quality:
    input:
        ddpm=ddpm_path(config["ddpm"]["timesteps"]),
        judge="results/models/judge.pt",
        data=DATA,
    output:
        csv="results/ddpm.csv",
        figure=report(
            "results/figures/ddpm_quality.png", caption=CAPTIONS + "ddpm_quality.rst", category="5. Classifiers and data"
        ),
    params:
        flags=cli_flags(
            seeds=config["sampling"]["seeds"],
            num_samples=config["sampling"]["num_samples"],
            batch_size=config["sampling"]["batch_size"],
            # what can change an unguided cell's samples (steps, UNet dtype): the same here
            **relevant_settings({"scale": 0}, STUDY_SETTINGS["default"]),
            # the judge's features always; named as the table names them ('sportballs' is the old default)
            **({"features": "judge"} if config["metrics"]["fid_features"] == "judge" else {}),
            confidence=config["metrics"]["confidence"],
        ),
        runtime=cli_flags(**RUNTIME),
    resources:
        gpu=1,
    log:
        "results/logs/ddpm_quality.log",
    benchmark:
        "results/benchmarks/ddpm_quality.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck ddpm-quality --ddpm {input.ddpm} --judge {input.judge} --data {input.data} "
        "{params.flags} --csv {output.csv} --figure {output.figure} {params.runtime} 2> {log}"


rule run_record:
    input:
        ddpm=ddpm_path(config["ddpm"]["timesteps"]),
        classifiers=expand("results/models/{model}.json", model=CLASSIFIER_MODE),
        weights=expand("results/models/{model}.pt", model=CLASSIFIER_MODE),
        samples=[f"results/samples/{CELL}.npz".format(**c) for c in all_cells()],
    output:
        "results/run_record.json",
    params:
        config=json.dumps(config, sort_keys=True),
        commit=GIT_COMMIT,  # a new commit reruns this record, and nothing else
        repo=workflow.basedir,
        # each model's content hash, and whether it was trained here or brought
        models=" ".join([f"ddpm={ddpm_path(config['ddpm']['timesteps'])}"]
                        + [f"{model}=results/models/{model}.pt" for model in CLASSIFIER_MODE]),
    log:
        "results/logs/run_record.log",
    benchmark:
        "results/benchmarks/run_record.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck record --config-json {params.config:q} --repo {params.repo} "
        "--jobs {input.ddpm} {input.classifiers} {input.samples} --models {params.models} --out {output} 2> {log}"
