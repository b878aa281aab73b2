# One sampling job per grid cell and training replicate, one evaluation per cell over every replicate.
# Within a replicate every cell uses the same seeds, so cells start from the same initial noise and
# differ only in their guidance; replicate r has its own models and its own seeds.
# The sensitivity and methods studies reuse them under other settings (rules/sensitivity.smk, methods.smk).


rule sample_cell:
    input:
        ddpm=lambda w: plan.ddpm_path(replicate=rep_index(w.rep)),
        classifier=lambda w: plan.classifier_path(w.classifier, replicate=rep_index(w.rep)),
        judge=JUDGE,
        reference=lambda w: plan.reference_path(replicate=rep_index(w.rep)),
    output:
        SAMPLES,
    params:
        flags=lambda w: plan.sample_flags(w, plan.settings["default"], config["sampling"]["num_samples"],
                                          replicate_seeds(config["sampling"]["seeds"], rep_index(w.rep))),
        runtime=RUNTIME,
    threads: JOB_THREADS
    resources:
        gpu=JOB_GPUS,
    log:
        f"results/logs/sample/{CELL_REP}.log",
    benchmark:
        f"results/benchmarks/sample/{CELL_REP}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck sample --ddpm {input.ddpm} --classifier {input.classifier} --judge {input.judge} "
        "--reference {input.reference} --scale {wildcards.scale} --x0-hat {wildcards.x0} --stabiliser {wildcards.stabiliser} "
        "{params.flags} --out {output} {params.runtime} --threads {threads} 2> {log}"


# Every replicate's samples of a cell, each scored by its own replicate's guide: the intervals are
# hierarchical (replicates, then sampling seeds, then samples).
rule evaluate_cell:
    input:
        samples=lambda w: plan.replicate_files(SAMPLES, w),
        classifier=lambda w: [plan.classifier_path(w.classifier, replicate=r) for r in plan.replicates],
        judge=JUDGE,
        features=plan.fid_inputs(),
        data=plan.data,
    output:
        METRICS,
    threads: JOB_THREADS
    params:
        fid=plan.fid_options(),
        flags=plan.evaluate_flags(config["sampling"]["num_samples"]),
        label=lambda w: w.classifier,  # the guide's role, whose accuracy the guide column reports
    log:
        f"results/logs/evaluate/{CELL}.log",
    benchmark:
        f"results/benchmarks/evaluate/{CELL}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck evaluate --samples {input.samples} --classifier {input.classifier} "
        "--judge {input.judge} --label {params.label} --data {input.data} {params.fid} "
        "{params.flags} --out {output} --threads {threads} 2> {log}"
