"""The aggregate subcommands of ``gradcheck``: table, figures and grids from per-cell outputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_table(a):
    from .table import load_cells, write_table

    write_table(load_cells(a.metrics), a.out)


def _cell(group: str) -> dict:
    """A cell's settings and trace, as the figures want them: ``group`` is its sample files, one per
    training replicate, joined by commas (every replicate's samples are drawn together)."""
    from .samples import load_replicates

    s = load_replicates(group.split(","))
    settings = s["record"]["settings"]
    return {"x0": settings["x0_hat"], "stabiliser": settings["stabiliser"], "timesteps": s["timesteps"],
            "images": s["images"], "trace": s}


def _name_path_pairs(specs: list[str], flag: str, name: str = "NAME") -> list[tuple[str, str]]:
    """``NAME=PATH`` arguments as (name, path) pairs, or a ValueError naming the flag and the bad one."""
    pairs = []
    for spec in specs:
        key, _, path = spec.partition("=")
        if not key or not path:
            raise ValueError(f"{flag} takes {name}=PATH, got {spec!r}")
        pairs.append((key, path))
    return pairs


def _named_cells(names: list[str], paths: list[str], what: str) -> list[tuple[str, dict]]:
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} {what} for {len(paths)} sample files")
    return [(name, _cell(path)) for name, path in zip(names, paths)]


def cmd_cosine(a):
    from .plots import CLASSIFIER_COLOURS, cosine_figure

    curves = [{"label": label, "timesteps": cell["timesteps"], "values": cell["trace"]["cosine"],
               "colour": CLASSIFIER_COLOURS.get(label)} for label, cell in _named_cells(a.labels, a.samples, "labels")]
    cosine_figure(curves, a.out, a.title)


def cmd_trace(a):
    from .plots import trace_figure

    cells = [{**cell, "classifier": clf, "values": cell["trace"][a.quantity]}
             for clf, cell in _named_cells(a.classifiers, a.samples, "--classifiers")]
    trace_figure(cells, a.quantity, a.out, a.title)


def cmd_grid(a):
    import numpy as np

    from .plots import sample_grid
    from .samples import load_samples

    # an equal share of the grid from every training replicate's file
    share = max(1, a.max_images // len(a.samples))
    sample_grid(np.concatenate([load_samples(p)["images"][:share] for p in a.samples]), a.out, zoom=a.zoom)


def cmd_panel(a):
    from .plots import variant_name, variant_panel
    from .table import stabiliser_order

    cells = sorted((_cell(p) for p in a.samples), key=lambda c: (c["x0"], stabiliser_order(c["stabiliser"])))
    panels = [{"label": variant_name(c["x0"], c["stabiliser"]), "images": c["images"]} for c in cells]
    stabilisers = len({c["stabiliser"] for c in cells})
    variant_panel(panels, a.out, a.title, columns=stabilisers if len(panels) > stabilisers else None)


def cmd_ablation(a):
    from .plots import ablation_figure
    from .table import load_cells

    ablation_figure(load_cells(a.metrics), a.out, a.title)


def cmd_classifiers(a):
    from .atomic import write_text
    from .plots import classifier_figure

    reports = {name: json.loads(Path(path).read_text()) for name, path in _name_path_pairs(a.report, "--report")}
    classifier_figure(reports, a.figure)
    lines = ["classifier,mode,clean_accuracy,noisy_accuracy,best_epoch,epochs_run,parameters"]
    # a brought classifier (mode "pretrained") has no best epoch: an empty field
    lines += [f"{n},{r['mode']},{r['clean_accuracy']:.4f},{r['noisy_accuracy']:.4f},"
              f"{'' if r.get('best_epoch') is None else r['best_epoch']},{r.get('epochs_run', 0)},{r['parameters']}"
              for n, r in reports.items()]
    write_text(a.csv, "\n".join(lines) + "\n")


def _read_table(path):
    import pandas as pd

    try:
        frame = pd.read_csv(path, true_values=["true", "True"], false_values=["false", "False"])
    except (OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"table {path} unreadable: {exc}") from exc
    if frame.empty:
        raise ValueError(f"table {path} has no rows")
    return frame


def cmd_findings(a):
    import sys

    from .atomic import write_text
    from .findings import check_claims, instrument_check, read_cells, render

    frame = _read_table(a.table)
    instruments = instrument_check(_read_table(a.classifiers), a.fit_accuracy)
    for warning in instruments["warnings"]:
        print(f"gradcheck findings: WARNING: {warning}", file=sys.stderr)
    claims = check_claims(frame, read_cells(a.metrics), n_boot=a.n_boot)
    text = render(claims, frame, a.table, instruments)
    if a.sensitivity:
        from . import sensitivity

        text += "\n" + sensitivity.render(_read_table(a.sensitivity), a.sensitivity)
    write_text(a.out, text)


def cmd_sensitivity(a):
    from . import sensitivity
    from .atomic import atomic_path
    from .plots import sensitivity_figure

    entries = _name_path_pairs(a.metrics, "--metrics", "VARIANT")
    try:
        changes = json.loads(a.changes_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--changes-json is not JSON: {exc}") from exc
    frame = sensitivity.build_table(entries, changes, a.combined, n_boot=a.n_boot)
    with atomic_path(a.csv) as tmp:
        frame.to_csv(tmp, index=False)
    sensitivity_figure(frame, sensitivity.HEADLINE, sensitivity.PAPER_HEADLINE, a.figure, a.title)


def cmd_ddpm_summary(a):
    import pandas as pd

    from .atomic import atomic_path
    from .plots import ddpm_quality_figure

    frame = pd.concat([_read_table(path).assign(replicate=r) for r, path in enumerate(a.csv)], ignore_index=True)
    frame = frame[["replicate"] + [c for c in frame.columns if c != "replicate"]]
    with atomic_path(a.out) as tmp:
        frame.to_csv(tmp, index=False)
    brought = frame["step"].isna().all()
    what = "brought DDPM (no training curve)" if brought else f"unconditional DDPM over training, {len(a.csv)} replicate(s)"
    ddpm_quality_figure(frame, a.figure, f"{what}: {int(frame['samples'].iloc[0])} unguided samples each "
                        f"at s = 0 ({frame['features'].iloc[0]} features)")


def cmd_replicates(a):
    import pandas as pd

    from .findings import cell_name
    from .plots import replicate_figure
    from .table import CLASSIFIER_ORDER, read_cell, stabiliser_order

    cells = sorted((read_cell(p, needs="per_replicate") for p in a.metrics),
                   key=lambda c: (CLASSIFIER_ORDER.get(c["classifier"], 9), c["x0"], stabiliser_order(c["stabiliser"])))
    shown = ("judge_accuracy", "judge_accuracy_low", "judge_accuracy_high", "accuracy", "accuracy_low", "accuracy_high")
    labels = [cell_name((c["classifier"], c["x0"], c["stabiliser"])) for c in cells]
    pooled = pd.DataFrame([{"label": label, **{k: c[k] for k in shown}} for label, c in zip(labels, cells)])
    per_replicate = pd.DataFrame([{"label": label, **r} for label, c in zip(labels, cells) for r in c["per_replicate"]])
    replicate_figure(pooled, per_replicate, a.out, a.title)


def cmd_headline(a):
    import pandas as pd

    from .plots import headline_fid_figure
    from .sensitivity import PAPER_HEADLINE
    from .table import read_cell

    cell = read_cell(a.metrics, needs="per_replicate")
    ddpm = _read_table(a.ddpm)
    final = ddpm[ddpm["final"]].set_index("replicate")
    suffix = f", {a.variant}" if a.variant else ""
    points = [{"label": f"replicate {r['replicate']}{suffix}", "source": "this run",
               "fid_ratio": float(final.loc[r["replicate"], "fid_ratio"]), "judge_accuracy": r["judge_accuracy"],
               "judge_accuracy_low": float("nan"), "judge_accuracy_high": float("nan")} for r in cell["per_replicate"]]
    frame = pd.DataFrame(points)
    if a.earlier:
        frame = pd.concat([frame, pd.read_csv(a.earlier)[list(frame.columns)]], ignore_index=True)
    headline_fid_figure(frame, a.out, paper=PAPER_HEADLINE,
                        title=f"headline cell (non-robust, x0-hat + ADAM, s = {cell['scale']:g}"
                        f"{', sensitivity variant ' + a.variant if a.variant else ''}) against DDPM quality")


def cmd_record(a):
    from .atomic import write_json
    from .provenance import run_record

    try:
        config = json.loads(a.config_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config-json is not JSON: {exc}") from exc
    record = run_record(config, a.repo, a.jobs, dict(_name_path_pairs(a.models, "--models")))
    if a.replicates_json:
        try:
            record["replicates"] = json.loads(a.replicates_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--replicates-json is not JSON: {exc}") from exc
    write_json(a.out, record)


def add_report_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("table", help="Table 1 (CSV, with .md and .tex beside it) from per-cell metrics")
    s.add_argument("--metrics", nargs="+", required=True, help="per-cell JSON files from evaluate")
    s.add_argument("--out", required=True, help="output CSV; .md and .tex are written beside it")
    s.set_defaults(func=cmd_table)

    s = sub.add_parser("figure-cosine", help="consecutive-step cosine of several cells in one panel")
    s.add_argument("--samples", nargs="+", required=True,
                   help="one line each: a cell's sample files (one per training replicate) joined by commas")
    s.add_argument("--labels", nargs="+", required=True, help="legend labels, one per file")
    s.add_argument("--title", default="", help="figure title")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=cmd_cosine)

    s = sub.add_parser("figure-trace", help="a gradient-trace quantity over time, a panel per classifier and input")
    s.add_argument("--samples", nargs="+", required=True,
                   help="one line each: a cell's sample files (one per training replicate) joined by commas")
    s.add_argument("--classifiers", nargs="+", required=True, help="the guiding classifier of each file")
    s.add_argument("--quantity", required=True, choices=["cosine", "grad_norm", "eps_cosine", "judge_confidence"])
    s.add_argument("--title", default="", help="figure title")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=cmd_trace)

    s = sub.add_parser("figure-grid", help="grid of one cell's samples")
    s.add_argument("--samples", nargs="+", required=True,
                   help="the cell's sample files, one per training replicate: an equal share of the grid each")
    s.add_argument("--max-images", type=int, default=64)
    s.add_argument("--zoom", type=int, default=2, help="nearest-neighbour upscaling")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=cmd_grid)

    s = sub.add_parser("figure-panel", help="first samples of several variants side by side")
    s.add_argument("--samples", nargs="+", required=True,
                   help="one panel each: a cell's sample files (one per training replicate) joined by commas")
    s.add_argument("--title", default="")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=cmd_panel)

    s = sub.add_parser("figure-ablation", help="FID and accuracy against the guidance scale")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--title", default="")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=cmd_ablation)

    s = sub.add_parser("findings", help="the paper's claims with measured numbers, intervals and verdicts")
    s.add_argument("--table", required=True, help="Table 1 CSV from `table`")
    s.add_argument("--metrics", nargs="+", required=True,
                   help="the grid cells' JSON files from evaluate: their per-sample outcomes give the paired verdicts")
    s.add_argument("--classifiers", required=True,
                   help="classifiers.csv from figure-classifiers: the instrument check of the judge and the guides")
    s.add_argument("--fit-accuracy", type=float, default=0.9,
                   help="clean validation accuracy below which a classifier is unfit and its verdicts are marked")
    s.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the paired differences")
    s.add_argument("--sensitivity", help="sensitivity CSV from `sensitivity`: adds its section")
    s.add_argument("--out", required=True, help="output Markdown")
    s.set_defaults(func=cmd_findings)

    s = sub.add_parser("sensitivity", help="the sensitivity study: each setting's paired effect on every cell")
    s.add_argument("--metrics", nargs="+", required=True,
                   help="VARIANT=PATH of per-cell JSON files from evaluate; one file may serve several variants")
    s.add_argument("--changes-json", required=True,
                   help="JSON: every variant -> the settings it changes, e.g. {\"default\": {}, ...}")
    s.add_argument("--combined", help="the variant that changes every setting at once")
    s.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the paired changes")
    s.add_argument("--title", default="")
    s.add_argument("--csv", required=True, help="output CSV")
    s.add_argument("--figure", required=True, help="output PNG")
    s.set_defaults(func=cmd_sensitivity)

    s = sub.add_parser("record", help="reproducibility record: config, git commit, packages, devices")
    s.add_argument("--config-json", required=True, help="the run's effective config, as JSON")
    s.add_argument("--repo", default=".", help="the workflow's git checkout")
    s.add_argument("--jobs", nargs="*", default=[], help="job outputs whose device records to collect")
    s.add_argument("--models", nargs="*", default=[], metavar="NAME=PATH",
                   help="models the run used (DDPM directory, classifier .pt): each is recorded with its content "
                   "hash and whether it was trained or brought (and from where)")
    s.add_argument("--replicates-json", help="JSON: every training replicate's seeds, recorded as they were used")
    s.add_argument("--out", required=True, help="output JSON")
    s.set_defaults(func=cmd_record)

    s = sub.add_parser("ddpm-summary", help="results/ddpm.csv and its figure from every replicate's ddpm-quality CSV")
    s.add_argument("--csv", nargs="+", required=True, help="ddpm-quality CSVs, one per training replicate, in order")
    s.add_argument("--out", required=True, help="output CSV: the rows of all, with a replicate column")
    s.add_argument("--figure", required=True, help="output PNG: FID ratio and class mix against training step")
    s.set_defaults(func=cmd_ddpm_summary)

    s = sub.add_parser("figure-replicates", help="every training replicate's judge accuracy per cell, beside the pooled one")
    s.add_argument("--metrics", nargs="+", required=True, help="per-cell JSON files from evaluate")
    s.add_argument("--title", default="")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=cmd_replicates)

    s = sub.add_parser("figure-headline", help="the headline cell's judge accuracy against each DDPM's FID ratio")
    s.add_argument("--metrics", required=True, help="the headline cell's JSON from evaluate (non-robust, x0-hat + ADAM)")
    s.add_argument("--ddpm", required=True, help="results/ddpm.csv from ddpm-summary: each replicate's FID ratio")
    s.add_argument("--earlier", help="CSV of earlier DDPMs' headline cells (label, source, fid_ratio, judge_accuracy, "
                   "judge_accuracy_low, judge_accuracy_high), drawn hollow")
    s.add_argument("--variant", help="the sensitivity variant --metrics comes from, named in the labels and title")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=cmd_headline)

    s = sub.add_parser("figure-classifiers", help="clean and noisy validation accuracy of the classifiers")
    s.add_argument("--report", nargs="+", required=True, help="NAME=PATH of train-classifier reports")
    s.add_argument("--figure", required=True, help="output PNG")
    s.add_argument("--csv", required=True, help="output CSV")
    s.set_defaults(func=cmd_classifiers)
