# The sensitivity study: config["sensitivity"]["cells"] under the config's settings ('default'),
# under each variant (one setting changed), under their combination, and the headline cell
# against the guidance scale. Reuses the grid's sampling and evaluation rules; a variant that
# cannot affect a cell (clipping x0-hat where there is no x0-hat) reuses the default's samples.

STUDY = config.get("sensitivity") or {}
STUDY_VARIANTS = study_variants(config)
STUDY_SAMPLES = STUDY.get("num_samples", config["sampling"]["num_samples"])
STUDY_SEEDS = STUDY.get("seeds", config["sampling"]["seeds"])
STUDY_SCALE = fmt_scale(config["grid"]["scale"])
STUDY_PATH = "results/sensitivity/{variant}/{kind}/" + CELL
STUDY_JOB = "{variant}/" + CELL  # under results/logs/sensitivity/<step>/ and results/benchmarks/...
HEADLINE_CELL = dict(classifier="nonrobust", x0="true", stabiliser="adam")  # the paper's 85.9%


def study_jobs():
    """(variant, cell) of every row of the study's table."""
    if not STUDY:
        raise ValueError("results/sensitivity.csv needs a `sensitivity` section in the config (see config.yaml)")
    cells = [
        dict(classifier=c["classifier"], x0=fmt_bool(c["x0"]), stabiliser=c["stabiliser"], scale=STUDY_SCALE)
        for c in STUDY["cells"]
    ]
    jobs = [(variant, cell) for variant in STUDY_VARIANTS for cell in cells]
    sweep = STUDY.get("sweep")
    if sweep:
        jobs += [(sweep_variant(config), HEADLINE_CELL | dict(scale=fmt_scale(s))) for s in sweep["scales"]]
    return list({(v, tuple(c.values())): (v, c) for v, c in jobs}.values())


def study_metrics(variant, cell):
    """The metrics file that serves (variant, cell): the default's when none of its changes matter."""
    settings, default = STUDY_SETTINGS[variant], STUDY_SETTINGS["default"]
    same = settings["timesteps"] == default["timesteps"] and relevant_settings(cell, settings) == relevant_settings(
        cell, default
    )
    return STUDY_PATH.format(variant="default" if same else variant, kind="metrics", **cell) + ".json"


def study_models(w):
    timesteps = STUDY_SETTINGS[w.variant]["timesteps"]
    replicate = rep_index(w.rep)
    return {"ddpm": ddpm_path(timesteps, replicate), "classifier": classifier_path(w.classifier, timesteps, replicate)}


STUDY_SAMPLES_PATH = STUDY_PATH.replace("{kind}", "samples") + "{rep}.npz"


use rule sample_cell as sample_study_cell with:
    input:
        unpack(study_models),
        judge="results/models/judge.pt",
    output:
        STUDY_SAMPLES_PATH,
    params:
        flags=lambda w: sample_flags(w, STUDY_SETTINGS[w.variant], STUDY_SAMPLES,
                                     replicate_seeds(STUDY_SEEDS, rep_index(w.rep))),
        runtime=cli_flags(**RUNTIME),
    log:
        "results/logs/sensitivity/sample/" + STUDY_JOB + "{rep}.log",
    benchmark:
        "results/benchmarks/sensitivity/sample/" + STUDY_JOB + "{rep}.tsv"


use rule evaluate_cell as evaluate_study_cell with:
    input:
        samples=lambda w: replicate_files(STUDY_SAMPLES_PATH, w),
        classifier=lambda w: [classifier_path(w.classifier, STUDY_SETTINGS[w.variant]["timesteps"], r)
                              for r in REPLICATES],
        judge="results/models/judge.pt",
        features=[FEATURES] if config["metrics"]["fid_features"] == "features" else [],
        data=DATA,
    output:
        STUDY_PATH.replace("{kind}", "metrics") + ".json",
    params:
        fid=fid_options,
        flags=evaluate_flags(STUDY_SAMPLES),
    log:
        "results/logs/sensitivity/evaluate/" + STUDY_JOB + ".log",
    benchmark:
        "results/benchmarks/sensitivity/evaluate/" + STUDY_JOB + ".tsv"


rule sensitivity:
    input:
        lambda w: sorted({study_metrics(v, c) for v, c in study_jobs()}),
    output:
        csv=report("results/sensitivity.csv", caption=CAPTIONS + "sensitivity.rst", category="6. Sensitivity"),
        figure=report(
            "results/figures/sensitivity.png", caption=CAPTIONS + "sensitivity.rst", category="6. Sensitivity"
        ),
    params:
        metrics=lambda w: " ".join(f"{v}={study_metrics(v, c)}" for v, c in study_jobs()),
        changes=json.dumps(STUDY_VARIANTS),  # in the config's order: the table's rows
        combined=f"--combined {STUDY['combined']}" if STUDY.get("combined") else "",
        n_boot=config["metrics"].get("n_boot", 1000),
        title=f"which setting moves the non-robust x0-hat + ADAM cell (s = {STUDY_SCALE}, "
        f"target {config['sampling']['target']})",
    log:
        "results/logs/sensitivity.log",
    benchmark:
        "results/benchmarks/sensitivity.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck sensitivity --metrics {params.metrics} --changes-json {params.changes:q} "
        "{params.combined} --n-boot {params.n_boot} --title {params.title:q} "
        "--csv {output.csv} --figure {output.figure} 2> {log}"
