# results/models/ddpm is the DDPM of ddpm.timesteps; ddpm_T<T> one that a sensitivity variant asks for;
# _r<r> the same for training replicate r (its own seed).
rule train_ddpm:
    input:
        data=plan.data,
    output:
        directory("results/models/{ddpm}"),
    wildcard_constraints:
        ddpm=r"ddpm_T[0-9]+" if plan.brought("ddpm") else r"ddpm(_T[0-9]+)?(_r[1-9][0-9]*)?",  # a brought DDPM is not trained
    params:
        # Checkpoints live beside the output, which Snakemake deletes on failure: a killed
        # run resumes from the last checkpoint when it is started again.
        work_dir="results/models/{ddpm}.ckpt",
        # the config keys are the CLI's flags
        flags=lambda w: plan.ddpm_training_flags(w.ddpm),
        runtime=RUNTIME,
    threads: JOB_THREADS * config["ddpm"]["processes"]  # each data-parallel process gets JOB_THREADS
    resources:
        gpu=JOB_GPUS,
    priority: 2  # the longest jobs, on the critical path: started first, the classifiers fill the other cores
    log:
        "results/logs/train_{ddpm}.log",
    benchmark:
        "results/benchmarks/train_{ddpm}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck train-ddpm --data {input.data} --out {output} --work-dir {params.work_dir} "
        "{params.flags} {params.runtime} --threads {threads} 2> {log}"


# robust: trained on x_t (t uniform); nonrobust: on clean images; judge and features: clean, another
# seed and architecture each (gradcheck/plan_base.py's CLASSIFIER_MODE says why).
rule train_classifier:
    input:
        data=plan.data,
    output:
        weights="results/models/{model}.pt",
        report="results/models/{model}.json",
    wildcard_constraints:
        model=plan.trained_classifier_pattern(),
    params:
        mode=lambda w: plan.classifier_mode(w.model),
        flags=lambda w: plan.classifier_training_flags(w.model),
        runtime=RUNTIME,
    threads: JOB_THREADS
    resources:
        gpu=JOB_GPUS,
    priority: 1  # before the cells: every replicate's cells need its guides and its robust reference
    log:
        "results/logs/train_classifier_{model}.log",
    benchmark:
        "results/benchmarks/train_classifier_{model}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck train-classifier --data {input.data} --mode {params.mode} "
        "--out {output.weights} --report {output.report} {params.flags} {params.runtime} --threads {threads} 2> {log}"



# Bring your own models: a user's DDPM pipeline or classifier file replaces training. Both were
# checked against the data and the schedule when the config was read; these rules copy them into
# results/models, so every later rule reads them as it reads trained ones.
rule bring_ddpm:
    input:
        # every file of the pipeline: an edited one reruns the copy, and what depends on it
        lambda w: plan.brought_ddpm_files(),
    output:
        directory("results/models/{brought_ddpm}"),
    wildcard_constraints:
        brought_ddpm="ddpm" if plan.brought("ddpm") else NEVER,
    params:
        pipeline=lambda w: plan.brought("ddpm"),
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
        data=plan.data,
        file=lambda w: plan.brought(w.model),
    output:
        weights="results/models/{model}.pt",
        report="results/models/{model}.json",
    wildcard_constraints:
        model=plan.brought_classifier_pattern(),
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
