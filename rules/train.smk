rule train_ddpm:
    input:
        data=rules.make_data.output.data,
    output:
        directory("results/models/ddpm"),
    params:
        # Checkpoints live beside the output, which Snakemake deletes on failure: a killed
        # run resumes from the last checkpoint when it is started again.
        work_dir="results/models/ddpm.ckpt",
        flags=cli_flags(**config["ddpm"]),  # the config keys are the CLI's flags
        runtime=cli_flags(**RUNTIME),
    resources:
        gpu=1,
    log:
        "results/logs/train_ddpm.log",
    benchmark:
        "results/benchmarks/train_ddpm.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck train-ddpm --data {input.data} --out {output} --work-dir {params.work_dir} "
        "{params.flags} {params.runtime} 2> {log}"


# robust: trained on x_t (t uniform); nonrobust: on clean images; judge: clean, another seed and
# architecture, never used for guidance (its pooled features give FID and KID without Inception).
CLASSIFIER_MODE = {"robust": "noisy", "nonrobust": "clean", "judge": "clean"}


rule train_classifier:
    input:
        data=rules.make_data.output.data,
    output:
        weights="results/models/{model}.pt",
        report="results/models/{model}.json",
    params:
        mode=lambda w: CLASSIFIER_MODE[w.model],
        flags=lambda w: cli_flags(
            timesteps=config["ddpm"]["timesteps"],
            epochs=config["classifiers"]["epochs"],
            batch_size=config["classifiers"]["batch_size"],
            lr=config["classifiers"]["lr"],
            patience=config["classifiers"]["patience"],
            seed=config["classifiers"]["seeds"][w.model],
            # the guides are the paper's MobileNetV3-small (the CLI default)
            **({"architecture": config["classifiers"].get("judge_architecture", "shufflenet_v2_x0_5")}
               if w.model == "judge" else {}),
        ),
        runtime=cli_flags(**RUNTIME),
    resources:
        gpu=1,
    log:
        "results/logs/train_classifier_{model}.log",
    benchmark:
        "results/benchmarks/train_classifier_{model}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck train-classifier --data {input.data} --mode {params.mode} "
        "--out {output.weights} --report {output.report} {params.flags} {params.runtime} 2> {log}"
