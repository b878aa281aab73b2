# The sensitivity study: config["sensitivity"]["cells"] under the config's settings ('default'),
# under each variant (one setting changed), under their combination, and the headline cell
# against the guidance scale. Reuses the grid's sampling and evaluation rules; a variant that
# cannot affect a cell (clipping x0-hat where there is no x0-hat) reuses the default's samples.

STUDY_PATH = plan.STUDY_PATH
STUDY_JOB = "{variant}/" + CELL  # under results/logs/sensitivity/<step>/ and results/benchmarks/...
STUDY_SAMPLES_PATH = STUDY_PATH.replace("{kind}", "samples") + "{rep}.npz"


def study_models(w):
    timesteps, replicate = plan.settings[w.variant]["timesteps"], rep_index(w.rep)
    return {"ddpm": plan.ddpm_path(timesteps, replicate), "classifier": plan.classifier_path(w.classifier, timesteps, replicate),
            "reference": plan.reference_path(timesteps, replicate)}


use rule sample_cell as sample_study_cell with:
    input:
        unpack(study_models),
        judge=JUDGE,
    output:
        STUDY_SAMPLES_PATH,
    params:
        flags=lambda w: plan.sample_flags(w, plan.settings[w.variant], plan.study_samples(),
                                          replicate_seeds(plan.study_seeds(), rep_index(w.rep))),
        runtime=RUNTIME,
    log:
        "results/logs/sensitivity/sample/" + STUDY_JOB + "{rep}.log",
    benchmark:
        "results/benchmarks/sensitivity/sample/" + STUDY_JOB + "{rep}.tsv"


use rule evaluate_cell as evaluate_study_cell with:
    input:
        samples=lambda w: plan.replicate_files(STUDY_SAMPLES_PATH, w),
        classifier=lambda w: [plan.classifier_path(w.classifier, plan.settings[w.variant]["timesteps"], r)
                              for r in plan.replicates],
        judge=JUDGE,
        features=plan.fid_inputs(),
        data=plan.data,
    output:
        STUDY_PATH.replace("{kind}", "metrics") + ".json",
    params:
        fid=plan.fid_options(),
        flags=plan.evaluate_flags(plan.study_samples()),
        label=lambda w: w.classifier,
    log:
        "results/logs/sensitivity/evaluate/" + STUDY_JOB + ".log",
    benchmark:
        "results/benchmarks/sensitivity/evaluate/" + STUDY_JOB + ".tsv"


rule sensitivity:
    localrule: True  # torch-free, seconds: on the submitting host under a cluster executor
    input:
        lambda w: sorted({plan.study_metrics(v, c) for v, c in plan.study_jobs()}),
    output:
        csv=report("results/sensitivity.csv", caption=CAPTIONS + "sensitivity.rst", category="6. Sensitivity"),
        figure=report(
            "results/figures/sensitivity.png", caption=CAPTIONS + "sensitivity.rst", category="6. Sensitivity"
        ),
    params:
        metrics=lambda w: " ".join(f"{v}={plan.study_metrics(v, c)}" for v, c in plan.study_jobs()),
        changes=json.dumps(plan.variants),  # in the config's order: the table's rows
        combined=f"--combined {plan.study['combined']}" if plan.study.get("combined") else "",
        n_boot=config["metrics"]["n_boot"],
        title=f"which setting moves the non-robust x0-hat + ADAM cell (s = {plan.scale}, "
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
