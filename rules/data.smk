# The data set: SportBalls drawn procedurally (the default), scikit-learn's digits, or the user's
# image folder; every source ends as the same .npz (plan.data) and contact sheet (plan.data_sheet).


rule make_data:
    output:
        data="results/data/sportballs.npz",
        sheet=report("results/figures/sportballs.png", caption="captions/data.rst", category="5. Classifiers and data"),
    params:
        flags=plan.data_flags(),
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
        folder=lambda w: plan.image_folder(),
        # a user's folder is no job's output: a changed, added or removed image reruns the import
        contents=lambda w: plan.folder_contents(),
        flags=plan.data_flags(),
    log:
        "results/logs/import_images_{imported}.log",
    benchmark:
        "results/benchmarks/import_images_{imported}.tsv"
    conda:
        ENV
    shell:
        "python -m gradcheck import-images --folder {params.folder:q} --out {output.data} --sheet {output.sheet} "
        "{params.flags} 2> {log}"
