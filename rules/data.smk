rule make_data:
    output:
        data="results/data/sportballs.npz",
        sheet=report(
            "results/figures/sportballs.png", caption="captions/sportballs.rst", category="5. Classifiers and data"
        ),
    params:
        flags=cli_flags(
            size=config["data"]["image_size"],
            train_per_class=config["data"]["train_per_class"],
            val_per_class=config["data"]["val_per_class"],
            seed=config["data"]["seed"],
        ),
    log:
        "results/logs/make_data.log",
    benchmark:
        "results/benchmarks/make_data.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck make-data --out {output.data} --sheet {output.sheet} {params.flags} 2> {log}"
