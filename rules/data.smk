# The data set: SportBalls drawn procedurally (the default), scikit-learn's digits, or the user's
# image folder; every source ends as the same .npz (DATA) and contact sheet (DATA_SHEET).
# Defaults of the data set's class list and ball-size range (configs/schema.yaml, gradcheck.data).
DATA_DEFAULTS = {"classes": ["basketball", "soccer", "tennis", "baseball"], "scale_range": [0.40, 0.75]}


def data_variant(data):
    """--classes and --scale-range, only where they differ from the defaults: the default
    data set keeps its old params, so existing results are not rerun for them."""
    options = {key: data.get(key, default) for key, default in DATA_DEFAULTS.items()}
    return {key: value for key, value in options.items() if list(value) != DATA_DEFAULTS[key]}


DIGITS_FOLDER = "results/data/digits"  # scikit-learn's digits, exported as an image folder


def image_folder():
    """The folder import_images reads: the digits as exported, or data.folder."""
    return DIGITS_FOLDER if config["data"]["source"] == "digits" else config["data"]["folder"]


def folder_contents():
    """A hash of a user's folder's file list, sizes and times; empty for the exported digits."""
    if config["data"]["source"] != "folder":
        return ""
    from gradcheck.folder import folder_fingerprint

    return folder_fingerprint(config["data"]["folder"])


rule make_data:
    output:
        data="results/data/sportballs.npz",
        sheet=report("results/figures/sportballs.png", caption="captions/data.rst", category="5. Classifiers and data"),
    params:
        flags=cli_flags(
            size=config["data"]["image_size"],
            train_per_class=config["data"].get("train_per_class"),
            val_per_class=config["data"].get("val_per_class"),
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


rule export_digits:
    output:
        directory(DIGITS_FOLDER),
    log:
        "results/logs/export_digits.log",
    benchmark:
        "results/benchmarks/export_digits.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck export-digits --out {output} 2> {log}"


# results/data/digits.npz from the exported digits, results/data/images.npz from data.folder
rule import_images:
    input:
        # the exported digits are a job's output; a user's folder was checked when the config was read
        folder=lambda w: DIGITS_FOLDER if w.imported == "digits" else [],
    output:
        data="results/data/{imported}.npz",
        sheet=report("results/figures/{imported}.png", caption="captions/data.rst", category="5. Classifiers and data"),
    wildcard_constraints:
        imported="digits|images",
    params:
        folder=lambda w: image_folder(),
        # a user's folder is no job's output: a changed, added or removed image reruns the import
        contents=lambda w: folder_contents(),
        flags=cli_flags(
            size=config["data"]["image_size"], val_fraction=config["data"]["val_fraction"], seed=config["data"]["seed"]
        ),
    log:
        "results/logs/import_images_{imported}.log",
    benchmark:
        "results/benchmarks/import_images_{imported}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck import-images --folder {params.folder:q} --out {output.data} --sheet {output.sheet} "
        "{params.flags} 2> {log}"
