"""Stage 5, the report: Table 1, the checked claims, the figures and the run record, from per-cell outputs."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from ..settings import MetricsSettings
from ..trace_quantities import STORED
from . import command, json_argument, name_path_pairs, option

log = logging.getLogger("gradcheck")

CELL_GROUP_HELP = "one line each: a cell's sample files (one per training replicate) joined by commas"


def read_table(path):
    """A CSV the workflow wrote, with its true/false columns as booleans; errors name the file."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, true_values=["true", "True"], false_values=["false", "False"])
    except (OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"table {path} unreadable: {exc}") from exc
    if frame.empty:
        raise ValueError(f"table {path} has no rows")
    return frame


def _cell(group: str) -> dict:
    """A cell's settings and trace, as the figures want them: ``group`` is its sample files, one per
    training replicate, joined by commas (every replicate's samples are drawn together)."""
    from ..samples import load_replicates

    s = load_replicates(group.split(","))
    settings = s["record"]["settings"]
    return {"x0": settings["x0_hat"], "stabiliser": settings["stabiliser"], "timesteps": s["timesteps"],
            "images": s["images"], "trace": s}


def _named_cells(names: list[str], paths: list[str], what: str) -> list[tuple[str, dict]]:
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} {what} for {len(paths)} sample files")
    return [(name, _cell(path)) for name, path in zip(names, paths)]


@command("table", help="Table 1 (CSV, with .md and .tex beside it) from per-cell metrics")
@option("--metrics", nargs="+", required=True, help="per-cell JSON files from evaluate")
@option("--out", required=True, help="output CSV; .md and .tex are written beside it")
def table(a):
    from ..table import load_cells, write_table

    write_table(load_cells(a.metrics), a.out)


@command("findings", help="the paper's claims with measured numbers, intervals and verdicts")
@option("--table", required=True, help="Table 1 CSV from `table`")
@option("--metrics", nargs="+", required=True,
        help="the grid cells' JSON files from evaluate: their per-sample outcomes give the paired verdicts")
@option("--classifiers", required=True,
        help="classifiers.csv from figure-classifiers: the instrument check of the judge and the guides")
@option("--fit-accuracy", type=float, setting=(MetricsSettings, "fit_accuracy"),
        help="clean validation accuracy below which a classifier is unfit and its verdicts are marked")
@option("--n-boot", type=int, setting=(MetricsSettings, "n_boot"), help="bootstrap replicates of the paired differences")
@option("--sensitivity", help="sensitivity CSV from `sensitivity`: adds its section")
@option("--out", required=True, help="output Markdown")
def findings(a):
    from ..atomic import write_text
    from ..findings import check_claims, instrument_check, read_cells, render

    frame = read_table(a.table)
    instruments = instrument_check(read_table(a.classifiers), a.fit_accuracy)
    for warning in instruments["warnings"]:
        print(f"gradcheck findings: WARNING: {warning}", file=sys.stderr)
    claims = check_claims(frame, read_cells(a.metrics), n_boot=a.n_boot)
    text = render(claims, frame, a.table, instruments)
    if a.sensitivity:
        from .. import sensitivity

        text += "\n" + sensitivity.render(read_table(a.sensitivity), a.sensitivity)
    write_text(a.out, text)


@command("figure-cosine", help="consecutive-step cosine of several cells in one panel")
@option("--samples", nargs="+", required=True, help=CELL_GROUP_HELP)
@option("--labels", nargs="+", required=True, help="legend labels, one per file")
@option("--title", default="", help="figure title")
@option("--out", required=True, help="output PNG")
def figure_cosine(a):
    from ..plots import CLASSIFIER_COLOURS, cosine_figure

    curves = [{"label": label, "timesteps": cell["timesteps"], "values": cell["trace"]["cosine"],
               "colour": CLASSIFIER_COLOURS.get(label)} for label, cell in _named_cells(a.labels, a.samples, "labels")]
    cosine_figure(curves, a.out, a.title)


@command("figure-trace", help="a gradient-trace quantity over time, a panel per classifier and input")
@option("--samples", nargs="+", required=True, help=CELL_GROUP_HELP)
@option("--classifiers", nargs="+", required=True, help="the guiding classifier of each file")
@option("--quantity", required=True, choices=STORED)
@option("--title", default="", help="figure title")
@option("--out", required=True, help="output PNG")
def figure_trace(a):
    from ..plots import trace_figure

    cells = [{**cell, "classifier": clf, "values": cell["trace"][a.quantity]}
             for clf, cell in _named_cells(a.classifiers, a.samples, "--classifiers")]
    trace_figure(cells, a.quantity, a.out, a.title)


@command("figure-grid", help="grid of one cell's samples")
@option("--samples", nargs="+", required=True,
        help="the cell's sample files, one per training replicate: an equal share of the grid each")
@option("--max-images", type=int, default=64)
@option("--zoom", type=int, default=2, help="nearest-neighbour upscaling")
@option("--out", required=True, help="output PNG")
def figure_grid(a):
    import numpy as np

    from ..plots import sample_grid
    from ..samples import load_samples

    share = max(1, a.max_images // len(a.samples))  # an equal share of the grid from every replicate's file
    sample_grid(np.concatenate([load_samples(p)["images"][:share] for p in a.samples]), a.out, zoom=a.zoom)


@command("figure-panel", help="first samples of several variants side by side")
@option("--samples", nargs="+", required=True,
        help="one panel each: a cell's sample files (one per training replicate) joined by commas")
@option("--title", default="")
@option("--out", required=True, help="output PNG")
def figure_panel(a):
    from ..plots import variant_name, variant_panel
    from ..table import stabiliser_order

    cells = sorted((_cell(p) for p in a.samples), key=lambda c: (c["x0"], stabiliser_order(c["stabiliser"])))
    panels = [{"label": variant_name(c["x0"], c["stabiliser"]), "images": c["images"]} for c in cells]
    stabilisers = len({c["stabiliser"] for c in cells})
    variant_panel(panels, a.out, a.title, columns=stabilisers if len(panels) > stabilisers else None)


@command("figure-ablation", help="FID and accuracy against the guidance scale")
@option("--metrics", nargs="+", required=True)
@option("--title", default="")
@option("--out", required=True, help="output PNG")
def figure_ablation(a):
    from ..plots import ablation_figure
    from ..table import load_cells

    ablation_figure(load_cells(a.metrics), a.out, a.title)


@command("figure-classifiers", help="clean and noisy validation accuracy of the classifiers")
@option("--report", nargs="+", required=True, help="NAME=PATH of train-classifier reports")
@option("--figure", required=True, help="output PNG")
@option("--csv", required=True, help="output CSV")
def figure_classifiers(a):
    from ..atomic import write_text
    from ..plots import classifier_figure

    reports = {name: json.loads(Path(path).read_text()) for name, path in name_path_pairs(a.report, "--report")}
    classifier_figure(reports, a.figure)
    lines = ["classifier,mode,clean_accuracy,noisy_accuracy,best_epoch,epochs_run,parameters"]
    # a brought classifier (mode "pretrained") has no best epoch: an empty field
    lines += [f"{n},{r['mode']},{r['clean_accuracy']:.4f},{r['noisy_accuracy']:.4f},"
              f"{'' if r.get('best_epoch') is None else r['best_epoch']},{r.get('epochs_run', 0)},{r['parameters']}"
              for n, r in reports.items()]
    write_text(a.csv, "\n".join(lines) + "\n")


@command("ddpm-summary", help="results/ddpm.csv and its figure from every DDPM's ddpm-quality CSV")
@option("--csv", nargs="+", required=True, help="ddpm-quality CSVs, one per DDPM replicate, in order")
@option("--out", required=True, help="output CSV: the rows of all, with a replicate column")
@option("--figure", required=True, help="output PNG: FID ratio and class mix against training step")
def ddpm_summary(a):
    import pandas as pd

    from ..atomic import atomic_path
    from ..plots import ddpm_quality_figure

    frame = pd.concat([read_table(path).assign(replicate=r) for r, path in enumerate(a.csv)], ignore_index=True)
    frame = frame[["replicate"] + [c for c in frame.columns if c != "replicate"]]
    with atomic_path(a.out) as tmp:
        frame.to_csv(tmp, index=False)
    brought = frame["step"].isna().all()
    what = "brought DDPM (no training curve)" if brought else f"unconditional DDPM over training, {len(a.csv)} replicate(s)"
    ddpm_quality_figure(frame, a.figure, f"{what}: {int(frame['samples'].iloc[0])} unguided samples each "
                        f"at s = 0 ({frame['features'].iloc[0]} features)")


@command("figure-replicates", help="every training replicate's judge accuracy per cell, beside the pooled one")
@option("--metrics", nargs="+", required=True, help="per-cell JSON files from evaluate")
@option("--title", default="")
@option("--out", required=True, help="output PNG")
def figure_replicates(a):
    import pandas as pd

    from ..findings import cell_name
    from ..plots import replicate_figure
    from ..table import CLASSIFIER_ORDER, read_cell, stabiliser_order

    cells = sorted((read_cell(p, needs="per_replicate") for p in a.metrics),
                   key=lambda c: (CLASSIFIER_ORDER.get(c["classifier"], 9), c["x0"], stabiliser_order(c["stabiliser"])))
    shown = ("judge_accuracy", "judge_accuracy_low", "judge_accuracy_high", "accuracy", "accuracy_low", "accuracy_high")
    labels = [cell_name((c["classifier"], c["x0"], c["stabiliser"])) for c in cells]
    pooled = pd.DataFrame([{"label": label, **{k: c[k] for k in shown}} for label, c in zip(labels, cells)])
    per_replicate = pd.DataFrame([{"label": label, **r} for label, c in zip(labels, cells) for r in c["per_replicate"]])
    replicate_figure(pooled, per_replicate, a.out, a.title)


@command("figure-headline", help="the headline cell's judge accuracy against each DDPM's FID ratio")
@option("--metrics", required=True, help="the headline cell's JSON from evaluate (non-robust, x0-hat + ADAM)")
@option("--ddpm", required=True, help="results/ddpm.csv from ddpm-summary: each DDPM's FID ratio")
@option("--ddpm-of", nargs="*", type=int, metavar="DDPM",
        help="the DDPM (its replicate in --ddpm) each training replicate sampled with, in replicate order; "
        "default: each replicate its own")
@option("--earlier", help="CSV of earlier DDPMs' headline cells (label, source, fid_ratio, judge_accuracy, "
        "judge_accuracy_low, judge_accuracy_high, features, samples), drawn hollow where their FID ratio was "
        "measured on this run's feature network and number of samples")
@option("--history-metrics", help="the headline cell under the sensitivity variant that has the earlier DDPMs' "
        "settings: drawn instead of --metrics where an earlier DDPM joins the plot")
@option("--variant", help="the sensitivity variant --history-metrics comes from, named in the labels and title")
@option("--out", required=True, help="output PNG")
def figure_headline(a):
    import pandas as pd

    from ..plots import headline_fid_figure
    from ..settings import PAPER_HEADLINE_ACCURACY
    from ..table import read_cell

    if bool(a.history_metrics) != bool(a.variant):
        raise ValueError("--history-metrics and --variant go together")
    final = read_table(a.ddpm).pipe(lambda d: d[d["final"]]).set_index("replicate")
    earlier, note, metrics, variant = None, "", a.metrics, None
    if a.earlier:
        earlier, note = comparable_ddpms(pd.read_csv(a.earlier), final, a.earlier)
        if a.history_metrics and len(earlier):  # compare like with like: the cell at their settings
            metrics, variant = a.history_metrics, a.variant
        elif a.history_metrics:
            note += f"; so the plot shows this run's headline cell, not its variant {a.variant} at their settings"
        if note:
            log.warning("%s", note)
    cell = read_cell(metrics, needs="per_replicate")
    suffix = f", {variant}" if variant else ""
    replicates = [r["replicate"] for r in cell["per_replicate"]]
    ddpm_of = replicate_ddpms(replicates, a.ddpm_of, final.index)
    if len(replicates) > 1 and len(set(ddpm_of.values())) == 1:  # replicate_ddpm: false, one DDPM for every guide
        note = "; ".join(filter(None, [note, f"one DDPM for all {len(replicates)} replicates: "
                                       "the vertical spread is the guides'"]))
    frame = pd.DataFrame([{"label": f"replicate {r['replicate']}{suffix}", "source": "this run",
                           "fid_ratio": float(final.loc[ddpm_of[r["replicate"]], "fid_ratio"]),
                           "judge_accuracy": r["judge_accuracy"], "judge_accuracy_low": float("nan"),
                           "judge_accuracy_high": float("nan")} for r in cell["per_replicate"]])
    if earlier is not None:
        frame = pd.concat([frame, earlier[list(frame.columns)]], ignore_index=True)
    headline_fid_figure(frame, a.out, paper=PAPER_HEADLINE_ACCURACY, note=note,
                        title=f"headline cell (non-robust, x0-hat + ADAM, s = {cell['scale']:g}"
                        f"{', sensitivity variant ' + variant if variant else ''}) against DDPM quality")


def replicate_ddpms(replicates, ddpm_of, measured) -> dict:
    """{training replicate: the DDPM it sampled with}, from --ddpm-of (one DDPM per replicate, in order; default:
    each replicate its own), every DDPM checked to be among those measured (results/ddpm.csv's replicates)."""
    ddpm_of = list(replicates) if ddpm_of is None else ddpm_of
    if len(ddpm_of) != len(replicates):
        raise ValueError(f"--ddpm-of names {len(ddpm_of)} DDPM(s) for the cell's {len(replicates)} replicates")
    missing = sorted(set(ddpm_of) - set(measured))
    if missing:
        raise ValueError(f"--ddpm: no final row for DDPM replicate(s) {missing} (it has {sorted(measured)})")
    return dict(zip(replicates, ddpm_of))


def comparable_ddpms(earlier, final, source: str):
    """(the earlier DDPMs whose FID ratio was measured as this run's, a note on those left out).

    An FID ratio depends on the feature network and on the number of samples, so only points
    measured on this run's features and sample count share its x axis.
    """
    missing = sorted({"features", "samples"} - set(earlier.columns))
    if missing:
        raise ValueError(f"{source}: no {' or '.join(missing)} column, so its FID ratios cannot be matched to this run's")
    measured = final[["features", "samples"]].drop_duplicates()
    if len(measured) != 1:
        raise ValueError(f"the replicates' FID ratios were measured differently: {measured.to_dict('records')}")
    features, samples = measured.iloc[0]
    same = (earlier["features"] == features) & (earlier["samples"] == samples)
    if same.all():
        return earlier, ""
    other = earlier[~same][["features", "samples"]].drop_duplicates()
    how = "; ".join(f"{f} at {n} samples" for f, n in other.itertuples(index=False))
    note = (f"{(~same).sum()} earlier DDPM(s) not drawn: their FID ratios are on {how}, "
            f"this run's on {features} at {samples} samples")
    return earlier[same], note


@command("record", help="reproducibility record: config, git commit, packages, devices")
@option("--config-json", required=True, help="the run's effective config, as JSON")
@option("--repo", default=".", help="the workflow's git checkout")
@option("--jobs", nargs="*", default=[], help="job outputs whose device records to collect")
@option("--models", nargs="*", default=[], metavar="NAME=PATH",
        help="models the run used (DDPM directory, classifier .pt): each is recorded with its content "
        "hash and whether it was trained or brought (and from where)")
@option("--replicates-json", help="JSON: every training replicate's seeds, recorded as they were used")
@option("--out", required=True, help="output JSON")
def record(a):
    from ..atomic import write_json
    from ..provenance import run_record

    config = json_argument(a.config_json, "--config-json")
    out = run_record(config, a.repo, a.jobs, dict(name_path_pairs(a.models, "--models")))
    if a.replicates_json:
        out["replicates"] = json_argument(a.replicates_json, "--replicates-json")
    write_json(a.out, out)
