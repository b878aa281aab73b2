# The training keys of ddpm.*: `pretrained` replaces training, it is not a flag of train-ddpm.
DDPM_TRAINING = {key: value for key, value in config["ddpm"].items() if key != "pretrained"}


def ddpm_training_flags(name):
    """train-ddpm's flags for 'ddpm', 'ddpm_T25' or 'ddpm_r1': the config's, with that T and replicate's seed."""
    _, timesteps, replicate = parse_model(name)
    seed = replicate_seeds([config["ddpm"]["seed"]], replicate)[0]
    return cli_flags(**(DDPM_TRAINING | {"timesteps": timesteps, "seed": seed}))


# results/models/ddpm is the DDPM of ddpm.timesteps; ddpm_T<T> one that a sensitivity variant asks for;
# _r<r> the same for training replicate r (its own seed).
rule train_ddpm:
    input:
        data=DATA,
    output:
        directory("results/models/{ddpm}"),
    wildcard_constraints:
        ddpm=r"ddpm_T[0-9]+" if brought("ddpm") else r"ddpm(_T[0-9]+)?(_r[1-9][0-9]*)?",  # a brought DDPM is not trained
    params:
        # Checkpoints live beside the output, which Snakemake deletes on failure: a killed
        # run resumes from the last checkpoint when it is started again.
        work_dir="results/models/{ddpm}.ckpt",
        # the config keys are the CLI's flags
        flags=lambda w: ddpm_training_flags(w.ddpm),
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
# architecture, never used for guidance; features: clean, a third architecture, whose pooled features
# give FID and KID without Inception (so the judge, which scores, does not also help choose s).
CLASSIFIER_MODE = {"robust": "noisy", "nonrobust": "clean", "judge": "clean", "features": "clean"}
# the guides are the paper's MobileNetV3-small (the CLI default)
ARCHITECTURE_KEY = {"judge": "judge_architecture", "features": "features_architecture"}


def classifier_training_flags(name):
    base, timesteps, replicate = parse_model(name)
    return cli_flags(
        timesteps=timesteps,
        # only the robust classifier sees the noise schedule
        **({"scale_betas": config["ddpm"]["scale_betas"]} if base == "robust" else {}),
        epochs=config["classifiers"]["epochs"],
        batch_size=config["classifiers"]["batch_size"],
        lr=config["classifiers"]["lr"],
        patience=config["classifiers"]["patience"],
        seed=replicate_seeds([config["classifiers"]["seeds"][base]], replicate)[0],
        **({"architecture": config["classifiers"][ARCHITECTURE_KEY[base]]} if base in ARCHITECTURE_KEY else {}),
    )


rule train_classifier:
    input:
        data=DATA,
    output:
        weights="results/models/{model}.pt",
        report="results/models/{model}.json",
    wildcard_constraints:
        model=alternatives(
            [f"{name}(_r[1-9][0-9]*)?" if name in ("robust", "nonrobust") else name
             for name in CLASSIFIER_MODE if not brought(name)] + ["robust_T[0-9]+(_r[1-9][0-9]*)?"]
        ),
    params:
        mode=lambda w: CLASSIFIER_MODE[parse_model(w.model)[0]],
        flags=lambda w: classifier_training_flags(w.model),
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



# Bring your own models: a user's DDPM pipeline or classifier file replaces training. Both were
# checked against the data and the schedule when the config was read; these rules copy them into
# results/models, so every later rule reads them as it reads trained ones.
rule bring_ddpm:
    input:
        # every file of the pipeline: an edited one reruns the copy, and what depends on it
        lambda w: sorted(str(p) for p in Path(brought("ddpm")).rglob("*") if p.is_file()),
    output:
        directory("results/models/{brought_ddpm}"),
    wildcard_constraints:
        brought_ddpm="ddpm" if brought("ddpm") else NEVER,
    params:
        pipeline=lambda w: brought("ddpm"),
        flags=cli_flags(
            image_size=config["data"]["image_size"],
            timesteps=config["ddpm"]["timesteps"],
            scale_betas=config["ddpm"]["scale_betas"],
        ),
    log:
        "results/logs/bring_{brought_ddpm}.log",
    benchmark:
        "results/benchmarks/bring_{brought_ddpm}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck bring-ddpm --pipeline {params.pipeline:q} --out {output} {params.flags} 2> {log}"


rule bring_classifier:
    input:
        data=DATA,
        file=lambda w: brought(w.model),
    output:
        weights="results/models/{model}.pt",
        report="results/models/{model}.json",
    wildcard_constraints:
        model=alternatives([name for name in CLASSIFIER_MODE if brought(name)]),
    params:
        flags=cli_flags(timesteps=config["ddpm"]["timesteps"], scale_betas=config["ddpm"]["scale_betas"]),
    log:
        "results/logs/bring_classifier_{model}.log",
    benchmark:
        "results/benchmarks/bring_classifier_{model}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck bring-classifier --file {input.file:q} --role {wildcards.model} --data {input.data} "
        "--out {output.weights} --report {output.report} {params.flags} 2> {log}"
