"""docs/results.md from a finished run's own outputs, and nothing typed by hand about results.

Run:  python -m gradcheck.results_page --results results --docs docs [--wall-time "1 h 12 min on 2026-12-02"]

Reads the run record (``run_record.json``: config, commit, replicates' seeds), Table 1
(``table1.md``, ``table1.csv``), the findings (``findings.md``), the DDPM's quality
(``ddpm.csv``), the classifiers (``classifiers.csv``), the scale ablation
(``scale_ablation.csv``), the sensitivity study (``sensitivity.csv``, if the run has one) and
the jobs' Snakemake benchmark files (``benchmarks/**/*.tsv``, column ``s``: seconds). Copies the
figures it shows into ``<docs>/figures/current/`` and writes ``<docs>/results.md``. Every input
is checked before anything is written; a missing one stops it with an error that names the
file. Writes are atomic (:mod:`gradcheck.atomic`). Imports no torch.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import shutil
import sys
from pathlib import Path

from .atomic import atomic_path, write_text
from .formatting import interval_text
from .plan import DATA_NAMES, TRACE_QUANTITIES
from .trace_quantities import BY_NAME as TRACE

PAGE = "results.md"
FIGURES = "figures/current"  # under the docs folder
# the earlier runs' results pages, newest first, relative to the docs folder
ARCHIVES = ("archive/2026-12-02-replicates-run.md", "archive/2026-12-02-earlier-runs.md")
DECISION = "decisions/ddpm-recipe.md"
README = "../README.md"  # from the docs folder
REQUIRED = ("run_record.json", "table1.md", "table1.csv", "findings.md", "ddpm.csv", "classifiers.csv",
            "scale_ablation.csv")
STABILISERS = {"none": "none", "adam": "ADAM"}  # any other name (ema0.9, ...) is shown as written


class MissingInput(FileNotFoundError):
    """A file the results page is made from is not there."""


# --- reading ------------------------------------------------------------------------------------

def _require(path: Path) -> Path:
    if not path.is_file():
        raise MissingInput(f"{path}: required input of the results page is missing "
                           "(run the workflow to the end first)")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(_require(path), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise MissingInput(f"{path}: has no rows")
    return rows


def read_run(results: str | os.PathLike) -> dict:
    """Every input of the page, read and checked; raises MissingInput naming the first missing file."""
    results = Path(results)
    for name in REQUIRED:
        _require(results / name)
    benchmarks = sorted((results / "benchmarks").rglob("*.tsv"))
    if not benchmarks:
        raise MissingInput(f"{results / 'benchmarks'}: required input of the results page is missing "
                           "(no Snakemake benchmark files, *.tsv)")
    record_path = results / "run_record.json"
    sensitivity = results / "sensitivity.csv"
    return {
        "results": results,
        "record": json.loads(record_path.read_text(encoding="utf-8")),
        "record_date": datetime.datetime.fromtimestamp(record_path.stat().st_mtime, datetime.timezone.utc)
        .date().isoformat(),
        "table1_md": (results / "table1.md").read_text(encoding="utf-8"),
        "table1": _rows(results / "table1.csv"),
        "findings": (results / "findings.md").read_text(encoding="utf-8"),
        "ddpm": _rows(results / "ddpm.csv"),
        "classifiers": _rows(results / "classifiers.csv"),
        "ablation": _rows(results / "scale_ablation.csv"),
        "sensitivity": _rows(sensitivity) if sensitivity.is_file() else None,
        "benchmarks": [(p.relative_to(results / "benchmarks").as_posix(), _seconds(p)) for p in benchmarks],
    }


def _seconds(path: Path) -> float:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise MissingInput(f"{path}: not a Snakemake benchmark file (no column 's')")
    return sum(float(row["s"]) for row in rows)


# --- formatting ---------------------------------------------------------------------------------

def _float(value):
    return None if value in (None, "") else float(value)


def _num(value) -> str:
    """A metric at a precision that fits its size."""
    if value is None:
        return ""
    size = abs(value)
    return f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def _pct(row, key) -> str:
    """A share in percent with its interval, as Table 1 writes it."""
    return interval_text(row, key, "{:.1f}", 100)


def _interval(row, key, fmt=_num) -> str:
    value = _float(row.get(key))
    if value is None:
        return ""
    low, high = _float(row.get(f"{key}_low")), _float(row.get(f"{key}_high"))
    return fmt(value) if low is None or high is None else f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def _points(row, key) -> str:
    """A change in percentage points with its interval."""
    return _interval(row, key, fmt=lambda v: f"{100 * v:.1f}")


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def _table(header: list[str], rows: list[list], right: int = 0) -> str:
    """A Markdown table; the columns from ``right`` on are right-aligned (numbers)."""
    align = ["---" if i < right or not right else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _true(value) -> bool:
    return str(value).strip().lower() == "true"


def _cell_name(row) -> str:
    stabiliser = STABILISERS.get(row["stabiliser"], row["stabiliser"])
    return f"{row['classifier']}, {'x0-hat' if _true(row['x0']) else 'x_t'}, {stabiliser}"


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    h, m = divmod(minutes, 60)
    return (f"{h} h {m} min {s} s" if h else f"{m} min {s} s" if m else f"{s} s")


def _secs(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _demote(markdown: str) -> str:
    """Every ATX heading one level lower (outside fenced code)."""
    out, fence = [], None
    for line in markdown.splitlines():
        stripped = line.lstrip(" ")
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else fence or marker
        elif fence is None and stripped.startswith("#") and len(line) - len(stripped) <= 3:
            level = len(stripped) - len(stripped.lstrip("#"))
            if level <= 5 and (len(stripped) == level or stripped[level] in " \t"):
                line = " " * (len(line) - len(stripped)) + "#" + stripped
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


# --- sections -----------------------------------------------------------------------------------

def what_was_run(run: dict) -> str:
    record, table1 = run["record"], run["table1"]
    cfg = record["config"]
    git = record.get("git") or {}
    commit = git.get("commit")
    state = (f"commit `{commit}`" + (" with uncommitted changes" if git.get("dirty") else "")
             if commit else "outside a git checkout (no commit recorded)")
    date = (record.get("created") or "")[:10] or f"{run['record_date']} (the run record file's date)"
    data, ddpm, sampling, grid = cfg["data"], cfg["ddpm"], cfg["sampling"], cfg["grid"]
    source = {"sportballs": "SportBalls, drawn procedurally", "digits": "scikit-learn's handwritten digits",
              "folder": f"the image folder `{data.get('folder')}`"}.get(data["source"], data["source"])
    counts = (f", {data['train_per_class']} training images per class" if data["source"] == "sportballs" else "")
    models = record.get("models") or {}
    if (models.get("ddpm") or {}).get("origin") == "brought":
        unet = f"a brought DDPM (`{models['ddpm'].get('source') or ddpm.get('pretrained')}`)"
    else:
        unet = (f"a {'-'.join(map(str, ddpm['block_out_channels']))} UNet trained for {ddpm['steps']:,} "
                f"{ddpm.get('precision', '')} steps of batch {ddpm['batch_size']}").replace("  ", " ")
    steps = sampling["steps"]
    steps = f"all {ddpm['timesteps']}" if steps == "all" else str(steps)
    replicates = record.get("replicates") or []
    seeds = "; ".join(
        f"replicate {r['replicate']}: DDPM seed {r.get('ddpm_seed')}, robust {r.get('robust_seed')}, "
        f"non-robust {r.get('nonrobust_seed')}, sampling seeds {', '.join(map(str, r.get('sampling_seeds', [])))}"
        for r in replicates)
    devices = sorted({str((job or {}).get("device")) for job in (record.get("jobs") or {}).values()})
    packages = record.get("packages") or {}
    features = sorted({row.get("features", "") for row in table1} - {""})
    return (
        f"Experiment `{cfg.get('experiment')}`, {state}, run on {date}. "
        f"Data: {source} ({', '.join(data['classes'])}; {data['image_size']} px{counts}). "
        f"DDPM: T = {ddpm['timesteps']}, {unet}. "
        f"Sampling: {steps} sampling steps, {sampling['num_samples']} samples per seed, target "
        f"*{sampling['target']}*; Table 1 at s = {grid['scale']}, {len(table1)} cells (guide: "
        f"{', '.join(grid['classifiers'])}; x0-hat: {', '.join('yes' if x else 'no' for x in grid['x0'])}; "
        f"stabiliser: {', '.join(grid['stabilisers'])}). "
        f"{cfg.get('replicates', len(replicates))} training replicate(s) ({seeds}). "
        f"FID and KID on {', '.join(f'`{f}`' for f in features) or 'the configured'} features. "
        f"Devices: {', '.join(devices) or 'not recorded'}; torch {packages.get('torch')}, "
        f"Python {record.get('python')}. From `results/run_record.json`.\n")


def ddpm_section(run: dict) -> str:
    rows = [r for r in run["ddpm"] if _true(r.get("final"))] or run["ddpm"][-1:]
    classes = [key[len("share_"):] for key in run["ddpm"][0]
               if key.startswith("share_") and not key.endswith(("_low", "_high"))]
    confidence = _float(rows[0].get("confidence"))
    header = (["replicate", "step", "samples", "sampling steps", "FID / real vs real", "FID (real vs real)"]
              + [f"{c} (%)" for c in classes])
    body = [[r.get("replicate", ""), r["step"], r.get("samples", ""), r.get("sampling_steps", ""),
             f"{float(r['fid_ratio']):.2f}×", f"{_num(_float(r['fid']))} ({_num(_float(r['fid_real_vs_real']))})"]
            + [_pct(r, f"share_{c}") for c in classes] for r in rows]
    level = f"{100 * confidence:.0f}% " if confidence else ""
    replicates = run["record"].get("config", {}).get("replicates", 1)
    which = ("each training replicate's DDPM" if len(rows) > 1 else
             f"the run's one DDPM, which the {replicates} training replicates' guides share,"
             if replicates > 1 else "the run's DDPM")
    return (f"The unconditional DDPM on its own: {which} at s = 0 and its final step "
            f"(`results/ddpm.csv` has every snapshot): FID on the feature network's features as a ratio "
            f"to the FID of two real sets of as many images, and the judge's class mix with {level}Wilson "
            f"intervals.\n\n" + _table(header, body, right=1))


def classifiers_section(run: dict) -> str:
    header = ["classifier", "trained on", "clean accuracy (%)", "noisy accuracy (%)", "best epoch", "epochs run",
              "parameters"]
    body = [[r["classifier"], r.get("mode", ""), f"{100 * float(r['clean_accuracy']):.1f}",
             f"{100 * float(r['noisy_accuracy']):.1f}", r.get("best_epoch", ""), r.get("epochs_run", ""),
             f"{int(r['parameters']):,}" if r.get("parameters") else ""] for r in run["classifiers"]]
    ddpm = run["record"]["config"]["ddpm"]
    return (f"Validation accuracy on clean images and on noisy x_t, t uniform over T = {ddpm['timesteps']} "
            f"(`results/classifiers.csv`).\n\n" + _table(header, body, right=2))


def ablation_section(run: dict) -> str:
    rows = sorted(run["ablation"], key=lambda r: (_cell_name(r), float(r["scale"])))
    header = ["cell", "s", "accuracy, guide (%)", "accuracy, judge (%)", "fooled (%)", "FID"]
    body = [[_cell_name(r), f"{float(r['scale']):g}", _pct(r, "accuracy"), _pct(r, "judge_accuracy"),
             _pct(r, "fooled"), _interval(r, "fid")] for r in rows]
    return (f"The guidance scale s (`results/scale_ablation.csv`); Table 1 uses s = "
            f"{run['record']['config']['grid']['scale']}.\n\n" + _table(header, body, right=1))


def sensitivity_section(run: dict) -> str:
    header = ["variant", "changes", "cell", "s", "guide (%)", "judge (%)", "fooled (%)", "FID",
              "change, judge (points)"]
    body = [[r["variant"], r.get("changes", ""), _cell_name(r), f"{float(r['scale']):g}", _pct(r, "accuracy"),
             _pct(r, "judge_accuracy"), _pct(r, "fooled"), _interval(r, "fid"),
             "" if r.get("role") == "default" else _points(r, "judge_accuracy_change")]
            for r in run["sensitivity"]]
    return ("Every cell of the study under each variant, paired with the default from the same seeds and "
            "initial noise (`results/sensitivity.csv`; the verdicts are in the findings above).\n\n"
            + _table(header, body, right=3))


def _steps(benchmarks: list[tuple[str, float]]) -> list[tuple[str, list[float]]]:
    """(step, seconds of each of its jobs) for the main steps, then everything else together."""
    groups: dict[str, list[float]] = {}
    for path, seconds in benchmarks:
        top, stem = path.split("/")[0], Path(path).stem
        if "/" not in path and stem.startswith(("train_ddpm", "train_classifier", "ddpm_quality", "bring_")):
            name = stem
        elif path.startswith("sensitivity/sample/"):
            name = "sensitivity study: sample_study_cell"
        elif path.startswith("sensitivity/evaluate/"):
            name = "sensitivity study: evaluate_study_cell"
        elif top == "sample":
            name = "sample_cell"
        elif top == "evaluate":
            name = "evaluate_cell"
        else:
            name = "other jobs (data, tables, findings, figures, run record)"
        groups.setdefault(name, []).append(seconds)
    ranks = ("train_ddpm", "bring_ddpm", "train_classifier", "bring_classifier", "ddpm_quality", "sample_cell",
             "evaluate_cell", "sensitivity study: sample", "sensitivity study: evaluate", "other")
    rank = lambda name: (next(i for i, prefix in enumerate(ranks + ("",)) if name.startswith(prefix)), name)
    return [(name, groups[name]) for name in sorted(groups, key=rank)]


def time_section(run: dict, wall_time: str | None) -> str:
    seconds = [s for _, s in run["benchmarks"]]
    body = [[name, len(jobs), _secs(sum(jobs)),
             _secs(jobs[0]) if len(jobs) == 1 else f"{_secs(min(jobs))}–{_secs(max(jobs))}"]
            for name, jobs in _steps(run["benchmarks"])]
    body.append(["**all jobs**", len(seconds), f"**{_secs(sum(seconds))}**", ""])
    wall = (f"Wall time of the run, as given by whoever ran it: {wall_time}."
            if wall_time else "The run's wall time was not given (`--wall-time`).")
    return (f"Seconds of each job as Snakemake measured it (`results/benchmarks/`, column `s`). "
            f"The jobs took {_duration(sum(seconds))} in all, added up; jobs that ran side by side "
            f"count once each, so this is not the wall time. {wall}\n\n"
            + _table(["step", "jobs", "seconds, all jobs", "seconds per job"], body, right=1))


def figure_captions(run: dict) -> list[tuple[str, str, str]]:
    """(section, file name, caption) for every figure the page shows, in the page's order."""
    cfg = run["record"]["config"]
    grid, sampling = cfg["grid"], cfg["sampling"]
    s, target = grid["scale"], sampling["target"]
    sheet = f"{DATA_NAMES.get(cfg['data']['source'], cfg['data']['source'])}.png"
    shown = [
        ("run", sheet, "Training examples of the data set, one row per class."),
        ("table1", "replicates.png", f"Judge accuracy of every grid cell at s = {s}, one dot per training "
                                     "replicate beside the pooled estimate and its interval."),
        ("table1", "headline_vs_ddpm.png", "The headline cell (non-robust classifier, x0-hat + ADAM) under the "
                                           "judge against the DDPM's FID ratio, with the earlier defaults' DDPMs "
                                           "where the settings and the FID's features and sample count match."),
        ("ddpm", "ddpm_quality.png", "The unguided DDPM at every snapshot: FID as a ratio to real vs real (left) "
                                     "and the judge's class mix (right)."),
        ("classifiers", "classifiers.png", "Clean and noisy validation accuracy of the classifiers."),
        ("ablation", "scale_ablation.png", "FID and accuracy under the guide and the judge against the guidance "
                                           "scale s."),
        ("sensitivity", "sensitivity.png", "The sensitivity study: each variant's change under the judge, and the "
                                           "scale sweep of the headline cell."),
        ("figures", "cosine_baseline.png", f"Consecutive-step cosine of the guidance direction without "
                                           f"modifications, robust against non-robust, at s = {s} (the paper's "
                                           "figure 1)."),
    ]
    shown += [("figures", f"cosine_{c}.png", f"Consecutive-step cosine of the applied guidance direction for the "
                                             f"{c} classifier at s = {s}: x_t (left) and x0-hat (right) (the "
                                             "paper's figure 2).") for c in grid["classifiers"]]
    shown += [("figures", f"samples_{c}.png", f"The first 16 samples of every variant guided by the {c} "
                                              f"classifier towards {target} at s = {s}, the same initial noise "
                                              "in every panel: x_t (top) and x0-hat (bottom), one column per "
                                              "stabiliser (the paper's figures 7 and 8).")
              for c in grid["classifiers"]]
    shown += [("figures", f"trace_{q}.png", f"{TRACE[q].description}, for every grid cell at s = {s}.")
              for q in TRACE_QUANTITIES]
    figures = run["results"] / "figures"
    return [(section, name, caption) for section, name, caption in shown if (figures / name).is_file()]


def _images(figures: list[tuple[str, str, str]], section: str) -> str:
    return "".join(f"![{name[:-4]}]({FIGURES}/{name})\n\n*{caption}*\n\n"
                   for where, name, caption in figures if where == section)


def render(run: dict, wall_time: str | None = None) -> str:
    figures = figure_captions(run)
    parts = [
        "# Results\n\n",
        f"[← Back to the README]({README})\n\n",
        "This page shows the current default run, written from its own outputs by "
        "`python -m gradcheck.results_page`: nothing on it is typed by hand. Earlier runs, with the defaults "
        f"of their day: [the replicates run of 2026-12-02]({ARCHIVES[0]}), [results of earlier defaults]({ARCHIVES[1]}); "
        "the DDPM recipe: "
        f"[decision record]({DECISION}).\n\n",
        "## What was run\n\n", what_was_run(run), "\n", _images(figures, "run"),
        "## Table 1\n\n", "From `results/table1.md` (`results/table1.csv` has every value).\n\n",
        run["table1_md"].strip("\n"), "\n\n", _images(figures, "table1"),
        _demote(run["findings"]), "\n",
        "## The DDPM on its own\n\n", ddpm_section(run), "\n", _images(figures, "ddpm"),
        "## Classifiers\n\n", classifiers_section(run), "\n", _images(figures, "classifiers"),
        "## Choosing s\n\n", ablation_section(run), "\n", _images(figures, "ablation"),
    ]
    if run["sensitivity"] is not None:
        parts += ["## Sensitivity study\n\n", sensitivity_section(run), "\n", _images(figures, "sensitivity")]
    gallery = _images(figures, "figures")
    if gallery:
        parts += ["## Figures\n\n", gallery]
    parts += ["## Time\n\n", time_section(run, wall_time), "\n",
              "## Earlier runs\n\n",
              "The results of earlier runs, kept for the record: "
              + ", ".join(f"[{path}]({path})" for path in ARCHIVES) + ".\n"]
    return "".join(parts)


def write_page(results: str | os.PathLike, docs: str | os.PathLike, wall_time: str | None = None) -> Path:
    """Copy the run's figures into ``<docs>/figures/current/`` and write ``<docs>/results.md``."""
    run = read_run(results)  # every input first: a missing one leaves the docs as they were
    text = render(run, wall_time)
    docs = Path(docs)
    target = docs / FIGURES
    names = {name for _, name, _ in figure_captions(run)}
    for name in sorted(names):
        with atomic_path(target / name) as tmp:
            shutil.copyfile(run["results"] / "figures" / name, tmp)
    for stale in sorted(target.glob("*.png")):  # the folder holds this run's figures only
        if stale.name not in names:
            stale.unlink()
    page = docs / PAGE
    write_text(page, text)
    return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gradcheck.results_page", description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="the finished run's results folder")
    p.add_argument("--docs", default="docs", help="the docs folder: writes results.md and figures/current/")
    p.add_argument("--wall-time", default=None,
                   help='the run\'s wall time as measured, e.g. "1 h 12 min on 2026-12-02, beside other work"')
    a = p.parse_args(argv)
    try:
        page = write_page(a.results, a.docs, a.wall_time)
    except MissingInput as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
