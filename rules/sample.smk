# One sampling job and one evaluation per grid cell. Every cell uses the same seeds,
# so cells start from the same initial noise and differ only in their guidance.
# The sensitivity study reuses both rules under other settings (rules/sensitivity.smk).


rule sample_cell:
    input:
        ddpm=ddpm_path(config["ddpm"]["timesteps"]),
        classifier="results/models/{classifier}.pt",
        judge="results/models/judge.pt",
    output:
        f"results/samples/{CELL}.npz",
    params:
        flags=lambda w: sample_flags(w, STUDY_SETTINGS["default"], config["sampling"]["num_samples"],
                                     config["sampling"]["seeds"]),
        runtime=cli_flags(**RUNTIME),
    resources:
        gpu=1,
    log:
        f"results/logs/sample/{CELL}.log",
    benchmark:
        f"results/benchmarks/sample/{CELL}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck sample --ddpm {input.ddpm} --classifier {input.classifier} --judge {input.judge} "
        "--scale {wildcards.scale} --x0-hat {wildcards.x0} --stabiliser {wildcards.stabiliser} "
        "{params.flags} --out {output} {params.runtime} 2> {log}"


rule evaluate_cell:
    input:
        samples=rules.sample_cell.output,
        classifier="results/models/{classifier}.pt",
        judge="results/models/judge.pt",
        data=DATA,
    output:
        f"results/metrics/{CELL}.json",
    params:
        fid=fid_options,
        flags=lambda w: cli_flags(
            n=config["metrics"].get("fid_n") or config["sampling"]["num_samples"],
            n_boot=config["metrics"].get("n_boot", 1000),
            confidence=config["metrics"].get("confidence", 0.95),
            threads=RUNTIME["threads"],
        ),
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
