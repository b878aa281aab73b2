"""The paper's claims, checked with paired verdicts, over every training replicate.

The two cells of a claim start every sample from the same initial noise (same replicate,
sampling seed and sample index), so a claim is decided from the hierarchical bootstrap
interval (replicates, then seeds, then samples) of the per-sample paired difference a - b of
its deciding metric (judge says target: 0/1; mean consecutive-step cosine), a 95% test:
  * "better": holds when the whole interval is above 0, does not hold when it is below;
  * "changes little" (within a margin m): holds when the whole interval lies within [-m, m],
    does not hold when it lies wholly outside it;
  * "approaches or beats": holds when the interval's low end is at least -m, does not hold
    when even its high end is below -m.
FID is not a per-sample quantity: where a claim also rests on FID, the two cells' FID
intervals decide that part as before (disjoint intervals), and the text says so.
"Inconclusive" says the run cannot tell. Each claim also says how many replicates hold on
their own, and a verdict resting on a classifier below the instrument check's accuracy is marked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .measures import MEASURES
from .settings import N_BOOT
from .stats import paired_difference

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def show(self, factor: float = 1.0, digits: int = 1) -> str:
        v, lo, hi = (x * factor for x in (self.value, self.low, self.high))
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def better(a: Estimate, b: Estimate, higher_is_better: bool = True) -> str:
    """Is a better than b?"""
    if not higher_is_better:
        a, b = Estimate(-a.value, -a.high, -a.low), Estimate(-b.value, -b.high, -b.low)
    if a.low > b.high:
        return HOLDS
    if a.high < b.low:
        return FAILS
    return UNCLEAR


def paired_verdict(kind: str, diff: Estimate, margin: float = 0.0) -> str:
    """The verdict of a claim of ``kind`` from the interval of the paired difference a - b (higher: better)."""
    if kind == "better":
        return HOLDS if diff.low > 0 else FAILS if diff.high < 0 else UNCLEAR
    if kind == "similar":
        if -margin <= diff.low and diff.high <= margin:
            return HOLDS
        return FAILS if diff.low > margin or diff.high < -margin else UNCLEAR
    if kind == "approaches":
        return HOLDS if diff.low >= -margin else FAILS if diff.high < -margin else UNCLEAR
    raise ValueError(f"unknown kind of claim {kind!r}")


def approaches(a: Estimate, reference: Estimate, margin: float, higher_is_better: bool = True) -> str:
    """Does a come within ``margin`` of the reference, or beat it?"""
    if not higher_is_better:
        a, reference = Estimate(-a.value, -a.high, -a.low), Estimate(-reference.value, -reference.high, -reference.low)
    if a.low >= reference.high - margin:
        return HOLDS
    if a.high < reference.low - margin:
        return FAILS
    return UNCLEAR


def combine(verdicts: list[str]) -> str:
    """A claim of several parts holds if all parts hold, fails if any part fails."""
    if FAILS in verdicts:
        return FAILS
    return HOLDS if all(v == HOLDS for v in verdicts) else UNCLEAR


# metric -> (column, shown as, factor, digits, higher is better, per-sample key in the cells' JSON), from
# gradcheck/measures.py, keyed as the claims name them: the per-sample key where there is one
METRICS = {m.per_sample or m.name: (m.name, m.description, m.factor, m.digits, m.higher_is_better, m.per_sample)
           for m in MEASURES}
# "changes little" / "approaches": within 15 percentage points of accuracy, a margin that
# counts the paper's own 85.9% against 96.9% (its x0-hat + ADAM claim) as approaching.
ACCURACY_MARGIN = 0.15
SHOWN = ["judge", "guide", "fid", "kid"]  # every claim shows these; its own list decides it


def _cell(frame: pd.DataFrame, classifier: str, x0: bool, stabiliser: str) -> pd.Series | None:
    rows = frame[(frame.classifier == classifier) & (frame.x0 == x0) & (frame.stabiliser == stabiliser)]
    return None if rows.empty else rows.iloc[0]


def _estimate(row: pd.Series, metric: str) -> Estimate:
    column = METRICS[metric][0]
    return Estimate(float(row[column]), float(row[f"{column}_low"]), float(row[f"{column}_high"]))


# (title, cell a, cell b, kind, deciding metrics, metrics shown with a verdict that does not decide,
#  the paper's evidence from its Table 1 / figures)
CLAIMS = [
    ("A robust classifier guides better than a non-robust one",
     ("robust", False, "none"), ("nonrobust", False, "none"), "better", ["judge", "fid"], [],
     "96.9% vs 15.6% accuracy, FID 26.6 vs 126.5"),
    # "Stabilises" says nothing of a window, so all steps decide; the paper's reading of figure 2,
    # "especially towards the end", is the last quarter's verdict, shown beside it.
    ("x0-hat stabilises the non-robust classifier's gradient",
     ("nonrobust", True, "none"), ("nonrobust", False, "none"), "better", ["cosine"], ["cosine_late"],
     "figure 2, higher consecutive-step cosine with x0-hat, especially towards the end"),
    ("x0-hat improves the non-robust classifier's samples",
     ("nonrobust", True, "none"), ("nonrobust", False, "none"), "better", ["judge", "fid"], [],
     "39.1% vs 15.6% accuracy, FID 103.3 vs 126.5"),
    ("ADAM alone changes little (non-robust classifier)",
     ("nonrobust", False, "adam"), ("nonrobust", False, "none"), "similar", ["judge"], [],
     "15.6% vs 15.6% accuracy, FID 127.5 vs 126.5"),
    ("ADAM alone changes little (robust classifier)",
     ("robust", False, "adam"), ("robust", False, "none"), "similar", ["judge"], [],
     "92.2% vs 96.9% accuracy, FID 26.6 vs 26.6"),
    ("x0-hat + ADAM on the non-robust classifier approaches or beats the robust baseline",
     ("nonrobust", True, "adam"), ("robust", False, "none"), "approaches", ["judge"], [],
     "85.9% vs 96.9% accuracy, FID 24.3 vs 26.6"),
    ("x0-hat + ADAM over-regularise the robust classifier",
     ("robust", False, "none"), ("robust", True, "adam"), "better", ["judge", "fid"], [],
     "96.9% vs 78.1% accuracy, FID 26.6 vs 34.5 (without vs with both)"),
]


def read_cells(paths: list[str]) -> dict[tuple, dict]:
    """(classifier, x0, stabiliser) -> a cell's metrics JSON from `evaluate`, with its per-sample outcomes."""
    from .table import read_cell

    cells = {}
    for path in paths:
        row = read_cell(path, needs="per_replicate")  # written with the per-sample outcomes by replicate
        cells[(row["classifier"], bool(row["x0"]), row["stabiliser"])] = row | {"path": str(path)}
    return cells


def _paired(a: dict, b: dict, key: str, n_boot: int, confidence: float,
            replicate: int | None = None) -> Estimate | None:
    """Interval of the mean per-sample difference a - b of ``key`` (over one replicate's samples, if given)."""
    pa, pb = a["per_sample"], b["per_sample"]
    for index in ("replicate", "seed_index"):
        if pa[index] != pb[index]:
            raise ValueError(f"{a['path']} and {b['path']} were not sampled from the same replicates and seeds; "
                             "a paired verdict compares cells sample by sample")
    values = [np.array([np.nan if v is None else v for v in p[key]], float) for p in (pa, pb)]
    if np.isnan(values[0]).all() or np.isnan(values[1]).all():
        return None  # an unguided cell has no cosine
    reps, seeds = np.asarray(pa["replicate"]), np.asarray(pa["seed_index"])
    rows = slice(None) if replicate is None else reps == replicate
    ci = paired_difference(values[0][rows], values[1][rows], seeds[rows],
                           None if replicate is not None else reps, n_boot=n_boot, confidence=confidence)
    return Estimate(ci.estimate, ci.low, ci.high)


def _margin(kind: str, metric: str) -> float:
    return ACCURACY_MARGIN if kind in ("similar", "approaches") and metric in ("judge", "guide") else 0.0


def check_claims(frame: pd.DataFrame, cells: dict[tuple, dict], n_boot: int = N_BOOT) -> list[dict]:
    """One dict per claim: title, cells, per-metric estimates, paired differences and verdicts, the
    overall verdict, and the verdict of each replicate on its own."""
    results = []
    for title, a_key, b_key, kind, metrics, extra, evidence in CLAIMS:
        a, b = _cell(frame, *a_key), _cell(frame, *b_key)
        if a is None or b is None or a_key not in cells or b_key not in cells:
            results.append({"title": title, "verdict": "not run", "evidence": evidence, "rows": [],
                            "cells": (a_key, b_key), "replicates": []})
            continue
        ca, cb = cells[a_key], cells[b_key]
        confidence = float(ca["confidence"])
        rows = []
        for metric in metrics + extra + [m for m in SHOWN if m not in metrics + extra]:
            column, label, factor, digits, higher, key = METRICS[metric]
            if column not in a or pd.isna(a[column]) or pd.isna(b[column]):
                continue
            ea, eb = _estimate(a, metric), _estimate(b, metric)
            diff = _paired(ca, cb, key, n_boot, confidence) if key else None
            if diff is not None:  # every per-sample metric is higher-is-better
                verdict = paired_verdict(kind, diff, _margin(kind, metric))
            elif kind == "better":
                verdict = better(ea, eb, higher)  # FID, KID: not per sample, so not paired
            else:
                verdict = ""
            rows.append({"metric": label, "a": ea.show(factor, digits), "b": eb.show(factor, digits),
                         "diff": "" if diff is None else diff.show(factor, digits), "paired": diff is not None,
                         "verdict": verdict, "decides": metric in metrics, "metric_key": metric})
        per_replicate = []
        for r in sorted(set(ca["per_sample"]["replicate"])):
            diffs = {m: _paired(ca, cb, METRICS[m][5], n_boot, confidence, r) for m in metrics if METRICS[m][5]}
            per_replicate.append(combine([UNCLEAR if d is None else paired_verdict(kind, d, _margin(kind, m))
                                          for m, d in diffs.items()]))
        results.append({"title": title, "verdict": combine([r["verdict"] for r in rows if r["decides"]]),
                        "evidence": evidence, "rows": rows, "cells": (a_key, b_key), "kind": kind,
                        "replicates": per_replicate})
    return results


def instrument_check(classifiers: pd.DataFrame, fit_accuracy: float) -> dict:
    """Which classifiers are fit to measure with: clean validation accuracy at least ``fit_accuracy``.

    ``classifiers`` is results/classifiers.csv (classifier, mode, clean_accuracy, noisy_accuracy, ...),
    named robust, robust_r1, nonrobust, ..., judge, features. Returns the rows, the unfit names and a
    warning for each unfit one. A warning, not an error: the outputs are still written.
    """
    missing = {"classifier", "clean_accuracy", "noisy_accuracy"} - set(classifiers.columns)
    if missing:
        raise ValueError(f"classifier summary lacks columns {sorted(missing)}")
    rows = classifiers.to_dict("records")
    unfit = [r["classifier"] for r in rows if float(r["clean_accuracy"]) < fit_accuracy]
    role = {"judge": "the judge (every verdict rests on it)", "features": "the FID feature network (every FID)"}
    warnings = [f"{role.get(name, f'the guide {name}')} has {float(r['clean_accuracy']):.1%} clean validation "
                f"accuracy, below the instrument check's {fit_accuracy:.0%}: verdicts resting on it are marked unfit"
                for name, r in ((r["classifier"], r) for r in rows) if name in unfit]
    return {"rows": rows, "unfit": unfit, "warnings": warnings, "fit_accuracy": fit_accuracy}


def _unfit_for(claim: dict, instruments: dict | None) -> list[str]:
    """The unfit classifiers a claim rests on: the judge, and every replicate's guide of its cells."""
    if not instruments:
        return []
    guides = {key[0] for key in claim["cells"]}
    return [name for name in instruments["unfit"]
            if name == "judge" or name.split("_")[0] in guides]


def cell_name(key: tuple) -> str:
    classifier, x0, stabiliser = key
    parts = [p for p in ("x0-hat" if x0 else "", "" if stabiliser == "none" else stabiliser.upper()
                         if stabiliser == "adam" else stabiliser) if p]
    return f"{classifier}, {' + '.join(parts) or 'no modification'}"


def _holding(claim: dict) -> str:
    reps = claim["replicates"]
    return f"{sum(v == HOLDS for v in reps)} of {len(reps)}" if reps else ""


def render(results: list[dict], frame: pd.DataFrame, source: str, instruments: dict | None = None) -> str:
    first = frame.iloc[0]
    replicates = int(first["replicates"]) if "replicates" in first else 1
    lines = [
        "# The paper's claims, checked",
        "",
        f"Generated from `{source}` and its cells' per-sample outcomes by `gradcheck findings`. Every cell: "
        f"{replicates} training replicate(s) x {first['seeds']} sampling seed(s) x {first['samples_per_seed']} "
        f"samples (guidance scale s = {first['scale']:g}, target '{first['target']}'), each number with its "
        f"{first['confidence']:.0%} hierarchical bootstrap interval (replicates, then seeds, then samples). "
        "A verdict follows from the interval of the paired per-sample difference between the claim's two cells "
        "(same replicate, seed and initial noise): see `gradcheck/findings.py`. FID is not per sample: where it "
        "decides, the two cells' FID intervals must be disjoint. \"Changes little\" and \"approaches\" allow "
        f"{ACCURACY_MARGIN * 100:.0f} percentage points of accuracy. \"Replicates holding\": the claim's verdict "
        "on each replicate's samples alone (paired metrics only).",
        "",
    ]
    if instruments:
        lines += _render_instruments(instruments)
    lines += ["| claim | verdict | replicates holding | instruments |", "| --- | --- | --- | --- |"]
    for r in results:
        unfit = _unfit_for(r, instruments)
        lines.append(f"| {r['title']} | **{r['verdict']}** | {_holding(r)} | "
                     f"{'unfit: ' + ', '.join(unfit) if unfit else 'fit' if instruments else ''} |")
    for r in results:
        a, b = (cell_name(k) for k in r["cells"])
        lines += ["", f"## {r['title']}: {r['verdict']}", "", f"Paper (Table 1 / figure 2): {r['evidence']}.", ""]
        if not r["rows"]:
            lines.append(f"Not run: the grid lacks `{a}` or `{b}`.")
            continue
        unfit = _unfit_for(r, instruments)
        if unfit:
            lines += [f"**Unfit instrument**: this verdict rests on {', '.join(unfit)}, below "
                      f"{instruments['fit_accuracy']:.0%} clean validation accuracy.", ""]
        lines += [f"| metric | {a} | {b} | paired difference | verdict |", "| --- | ---: | ---: | ---: | --- |"]
        lines += [f"| {row['metric']}{' (decides)' if row['decides'] else ''} | {row['a']} | {row['b']} | "
                  f"{row['diff']} | {row['verdict']} |" for row in r["rows"]]
        if r["replicates"]:
            lines += ["", f"Holds in {_holding(r)} replicates on their own ({', '.join(r['replicates'])})."]
        if any(row["metric_key"] == "cosine_late" for row in r["rows"]):
            lines += ["", "All steps decide: the claim says the gradient is stabilised, not only at the end; the "
                      "last quarter of the steps, where the paper sees x0-hat help most, has its verdict beside it."]
    lines += ["", "## How often guidance fooled its own classifier", "",
              "Fooled: the guiding classifier calls the sample the target and the independent judge does not.", "",
              "| cell | guide (%) | judge (%) | fooled (%) |", "| --- | ---: | ---: | ---: |"]
    for _, row in frame.iterrows():
        key = (row["classifier"], bool(row["x0"]), row["stabiliser"])
        lines.append(f"| {cell_name(key)} | {_estimate(row, 'guide').show(100)} | "
                     f"{_estimate(row, 'judge').show(100)} | "
                     f"{Estimate(row['fooled'], row['fooled_low'], row['fooled_high']).show(100)} |")
    return "\n".join(lines) + "\n"


def _render_instruments(instruments: dict) -> list[str]:
    lines = ["## The instruments", "",
             f"Every verdict rests on the judge and on the guides of its cells; a classifier below "
             f"{instruments['fit_accuracy']:.0%} clean validation accuracy is unfit, and the verdicts that rest on it "
             "are marked.", "",
             "| classifier | clean accuracy (%) | noisy accuracy (%) | fit |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {r['classifier']} | {float(r['clean_accuracy']) * 100:.1f} | {float(r['noisy_accuracy']) * 100:.1f} | "
              f"{'no' if r['classifier'] in instruments['unfit'] else 'yes'} |" for r in instruments["rows"]]
    if instruments["unfit"]:
        lines += ["", f"**Warning**: {'; '.join(instruments['warnings'])}."]
    return lines + [""]
