# Defaults of the data set's class list and ball-size range (configs/schema.yaml, gradcheck.data).
DATA_DEFAULTS = {"classes": ["basketball", "soccer", "tennis", "baseball"], "scale_range": [0.40, 0.75]}


def data_variant(data):
    """--classes and --scale-range, only where they differ from the defaults: the default
    data set keeps its old params, so existing results are not rerun for them."""
    options = {key: data.get(key, default) for key, default in DATA_DEFAULTS.items()}
    return {key: value for key, value in options.items() if list(value) != DATA_DEFAULTS[key]}


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
            **data_variant(config["data"]),
        ),
    log:
        "results/logs/make_data.log",
    benchmark:
        "results/benchmarks/make_data.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck make-data --out {output.data} --sheet {output.sheet} {params.flags} 2> {log}"
