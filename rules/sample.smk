# One sampling job per grid cell and training replicate, one evaluation per cell over every replicate.
# Within a replicate every cell uses the same seeds, so cells start from the same initial noise and
# differ only in their guidance; replicate r has its own models and its own seeds.
# The sensitivity study reuses both rules under other settings (rules/sensitivity.smk).


rule sample_cell:
    input:
        ddpm=lambda w: ddpm_path(config["ddpm"]["timesteps"], rep_index(w.rep)),
        classifier=lambda w: classifier_path(w.classifier, replicate=rep_index(w.rep)),
        judge="results/models/judge.pt",
    output:
        f"results/samples/{CELL_REP}.npz",
    params:
        flags=lambda w: sample_flags(w, STUDY_SETTINGS["default"], config["sampling"]["num_samples"],
                                     replicate_seeds(config["sampling"]["seeds"], rep_index(w.rep))),
        runtime=cli_flags(**RUNTIME),
    resources:
        gpu=1,
    log:
        f"results/logs/sample/{CELL_REP}.log",
    benchmark:
        f"results/benchmarks/sample/{CELL_REP}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck sample --ddpm {input.ddpm} --classifier {input.classifier} --judge {input.judge} "
        "--scale {wildcards.scale} --x0-hat {wildcards.x0} --stabiliser {wildcards.stabiliser} "
        "{params.flags} --out {output} {params.runtime} 2> {log}"


def evaluate_flags(num_samples):
    return cli_flags(
        n=min(config["metrics"].get("fid_n") or num_samples, num_samples),
        n_boot=config["metrics"].get("n_boot", 1000),
        confidence=config["metrics"].get("confidence", 0.95),
        threads=RUNTIME["threads"],
    )


# Every replicate's samples of a cell, each scored by its own replicate's guide: the intervals are
# hierarchical (replicates, then sampling seeds, then samples).
rule evaluate_cell:
    input:
        samples=lambda w: replicate_files(f"results/samples/{CELL_REP}.npz", w),
        classifier=lambda w: [classifier_path(w.classifier, replicate=r) for r in REPLICATES],
        judge="results/models/judge.pt",
        features=[FEATURES] if config["metrics"]["fid_features"] == "features" else [],
        data=DATA,
    output:
        f"results/metrics/{CELL}.json",
    params:
        fid=fid_options,
        flags=evaluate_flags(config["sampling"]["num_samples"]),
    log:
        f"results/logs/evaluate/{CELL}.log",
    benchmark:
        f"results/benchmarks/evaluate/{CELL}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck evaluate --samples {input.samples} --classifier {input.classifier} "
        "--judge {input.judge} --label {wildcards.classifier} --data {input.data} {params.fid} "
        "{params.flags} --out {output} 2> {log}"
