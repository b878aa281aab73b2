# The unconditional DDPM's own quality, apart from any guide: the judge's class mix and the
# FID of s = 0 samples (the cells' seeds) at every training snapshot and the final weights,
# for every DDPM the run trains (replicate 0's alone where the replicates share it); results/ddpm.csv has one
# row per DDPM replicate and snapshot.
rule ddpm_quality:
    input:
        ddpm=lambda w: plan.ddpm_replicate_path(ddpm_replicate=rep_index(w.rep)),
        judge=JUDGE,
        features=plan.fid_inputs(),
        data=plan.data,
    output:
        "results/ddpm_quality/ddpm{rep}.csv",
    params:
        flags=lambda w: plan.ddpm_quality_flags(rep_index(w.rep)),
        features=plan.ddpm_quality_features(),
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
        [f"results/ddpm_quality/ddpm{rep_suffix(d)}.csv" for d in plan.ddpm_replicates],
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
