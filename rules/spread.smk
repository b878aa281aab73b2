# Where the replicates' spread comes from (not in the default run): the headline cell sampled for every
# replicate's DDPM with every replicate's guide, each DDPM from its own seeds, so the guides of one DDPM
# start from the same noise. Where the grid's replicates have their own DDPMs (replicate_ddpm: true) the
# diagonal pairs are the grid's own samples; otherwise only DDPM 0 with guide 0 is, and the study trains the
# other replicates' DDPMs.
#   snakemake results/spread.csv --cores all

from gradcheck.plan import SPREAD_SAMPLES

SPREAD_PAIR = CELL + "_ddpm{ddpm_rep}_guide{guide_rep}"


wildcard_constraints:
    ddpm_rep="[0-9]+",
    guide_rep="[0-9]+",


use rule sample_cell as sample_spread_cell with:
    input:
        ddpm=lambda w: plan.ddpm_replicate_path(ddpm_replicate=int(w.ddpm_rep)),
        classifier=lambda w: plan.classifier_path(w.classifier, replicate=int(w.guide_rep)),
        judge=JUDGE,
        reference=lambda w: plan.reference_path(replicate=int(w.ddpm_rep)),
    output:
        SPREAD_SAMPLES,
    params:
        flags=lambda w: plan.sample_flags(w, plan.settings["default"], config["sampling"]["num_samples"],
                                          replicate_seeds(config["sampling"]["seeds"], int(w.ddpm_rep))),
        runtime=RUNTIME,
    log:
        "results/logs/spread/sample/" + SPREAD_PAIR + ".log",
    benchmark:
        "results/benchmarks/spread/sample/" + SPREAD_PAIR + ".tsv"


rule spread:
    input:
        cells=lambda w: [path for _, _, path in plan.spread_cells()],
        judge=JUDGE,
    output:
        csv="results/spread.csv",
        pairs="results/spread_pairs.csv",
        figure=report("results/figures/spread.png", caption=CAPTIONS + "spread.rst", category="8. Spread"),
    threads: JOB_THREADS
    params:
        cells=lambda w: " ".join(f"{d},{g}={path}" for d, g, path in plan.spread_cells()),
        flags=cli_flags(n_boot=config["metrics"]["n_boot"], confidence=config["metrics"]["confidence"]),
        title=f"non-robust x0-hat + ADAM, s = {plan.scale}: every replicate's DDPM with every replicate's guide",
    log:
        "results/logs/spread.log",
    benchmark:
        "results/benchmarks/spread.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck spread --cells {params.cells} --judge {input.judge} {params.flags} --title {params.title:q} "
        "--csv {output.csv} --pairs-csv {output.pairs} --figure {output.figure} --threads {threads} 2> {log}"
