def timesteps_of(name):
    """T of a model file name: 'ddpm' or 'robust' -> config's T, 'ddpm_T400' -> 400."""
    return int(name.split("_T")[1]) if "_T" in name else config["ddpm"]["timesteps"]


# results/models/ddpm is the DDPM of ddpm.timesteps; ddpm_T<T> one that a sensitivity variant asks for.
rule train_ddpm:
    input:
        data=rules.make_data.output.data,
    output:
        directory("results/models/{ddpm}"),
    params:
        # Checkpoints live beside the output, which Snakemake deletes on failure: a killed
        # run resumes from the last checkpoint when it is started again.
        work_dir="results/models/{ddpm}.ckpt",
        # the config keys are the CLI's flags
        flags=lambda w: cli_flags(**(config["ddpm"] | {"timesteps": timesteps_of(w.ddpm)})),
        runtime=cli_flags(**RUNTIME),
    resources:
        gpu=1,
    log:
        "results/logs/train_{ddpm}.log",
    benchmark:
        "results/benchmarks/train_{ddpm}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck train-ddpm --data {input.data} --out {output} --work-dir {params.work_dir} "
        "{params.flags} {params.runtime} 2> {log}"


# robust: trained on x_t (t uniform); nonrobust: on clean images; judge: clean, another seed and
# architecture, never used for guidance (its pooled features give FID and KID without Inception).
CLASSIFIER_MODE = {"robust": "noisy", "nonrobust": "clean", "judge": "clean"}


def base_model(name):
    """'robust_T400' -> 'robust': the robust classifier trained on another T's noise."""
    return name.split("_T")[0]


rule train_classifier:
    input:
        data=rules.make_data.output.data,
    output:
        weights="results/models/{model}.pt",
        report="results/models/{model}.json",
    params:
        mode=lambda w: CLASSIFIER_MODE[base_model(w.model)],
        flags=lambda w: cli_flags(
            timesteps=timesteps_of(w.model),
            # only the robust classifier sees the noise schedule
            **({"scale_betas": config["ddpm"]["scale_betas"]} if base_model(w.model) == "robust" else {}),
            epochs=config["classifiers"]["epochs"],
            batch_size=config["classifiers"]["batch_size"],
            lr=config["classifiers"]["lr"],
            patience=config["classifiers"]["patience"],
            seed=config["classifiers"]["seeds"][base_model(w.model)],
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

