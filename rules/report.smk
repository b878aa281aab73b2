# Aggregates: Table 1, the cosine figures, sample grids, the scale ablation, classifier accuracies.


rule table1:
    input:
        cell_paths(f"results/metrics/{CELL}.json", "grid"),
    output:
        csv="results/table1.csv",
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


rule scale_ablation:
    input:
        cell_paths(f"results/metrics/{CELL}.json", "ablation"),
    output:
        csv="results/scale_ablation.csv",
        figure="results/figures/scale_ablation.png",
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
        lambda w: cell_paths(f"results/samples/{CELL}.npz", "grid", w.classifier),
    output:
        "results/figures/cosine_{classifier}.png",
    params:
        title=lambda w: f"{w.classifier} classifier, s = {fmt_scale(config['grid']['scale'])}: "
        "consecutive-step cosine of the guidance (mean ± std over samples)",
    log:
        "results/logs/cosine_{classifier}.log",
    benchmark:
        "results/benchmarks/cosine_{classifier}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-cosine --samples {input} --title '{params.title}' --out {output} 2> {log}"


rule cosine_baseline:
    input:
        expand(
            "results/samples/{classifier}/x0-false_adam-false_s-{scale}.npz",
            classifier=config["grid"]["classifiers"],
            scale=fmt_scale(config["grid"]["scale"]),
        ),
    output:
        "results/figures/cosine_baseline.png",
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
        "--title '{params.title}' --out {output} 2> {log}"


rule sample_grid:
    input:
        f"results/samples/{CELL}.npz",
    output:
        f"results/figures/grids/{CELL_NAME}.png",
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
        lambda w: cell_paths(f"results/samples/{CELL}.npz", "grid", w.classifier),
    output:
        "results/figures/samples_{classifier}.png",
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
        "python -m gradcheck figure-panel --samples {input} --title '{params.title}' --out {output} 2> {log}"


rule classifier_summary:
    input:
        robust="results/models/robust.json",
        nonrobust="results/models/nonrobust.json",
        judge="results/models/judge.json",
    output:
        csv="results/classifiers.csv",
        figure="results/figures/classifiers.png",
    log:
        "results/logs/classifiers.log",
    benchmark:
        "results/benchmarks/classifiers.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck figure-classifiers --report robust={input.robust} nonrobust={input.nonrobust} "
        "judge={input.judge} --figure {output.figure} --csv {output.csv} 2> {log}"


rule run_record:
    input:
        ddpm=rules.train_ddpm.output,
        classifiers=expand("results/models/{model}.json", model=CLASSIFIER_MODE),
        samples=[f"results/samples/{CELL}.npz".format(**c) for c in all_cells()],
    output:
        "results/run_record.json",
    params:
        config=json.dumps(config, sort_keys=True),
        commit=GIT_COMMIT,  # a new commit reruns this record, and nothing else
        repo=workflow.basedir,
    log:
        "results/logs/run_record.log",
    benchmark:
        "results/benchmarks/run_record.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck record --config-json {params.config:q} --repo {params.repo} "
        "--jobs {input} --out {output} 2> {log}"
