"""The sensitivity study: which setting moves the paper's headline cell, and by how much.

Every variant changes one setting of the default experiment (or all of them at once) and
samples the same cells from the same seeds, so sample i of seed s of replicate r differs between
two variants only through the settings. A variant's effect on a cell is therefore measured
pairwise: the per-sample differences of "called the target" (0/1) get a hierarchical
bootstrap interval over replicates, seeds and samples (gradcheck.stats.paired_difference, as the
findings' verdicts), much tighter than comparing two intervals.

The verdict of a factor follows from that interval alone: it moves the cell towards the
paper when the whole interval of the change in judge accuracy is above zero, away when
it is below, and "no measurable effect" when it contains zero.
"""

from __future__ import annotations


import pandas as pd

from .findings import ACCURACY_MARGIN, HOLDS, Estimate, approaches, cell_name
from .settings import HEADLINE, N_BOOT, PAPER_HEADLINE_ACCURACY
from .stats import paired_difference
from .table import METRICS, read_cell, stabiliser_order

DEFAULT = "default"
CHANGES = ["accuracy", "judge_accuracy"]  # per-sample 0/1 outcomes, compared pairwise
CELL_KEYS = ["classifier", "x0", "stabiliser"]
TOWARDS, AWAY, NO_EFFECT = "towards the paper", "away from the paper", "no measurable effect"


def _paired_change(row: dict, base: dict, outcome: str, n_boot: int, confidence: float) -> dict:
    """Mean per-sample change of ``outcome`` (guide or judge says target) from base to row."""
    a, b = row["per_sample"], base["per_sample"]
    if a["seed_index"] != b["seed_index"] or a.get("replicate") != b.get("replicate"):
        raise ValueError(f"{row['samples']} and {base['samples']} were not sampled from the same replicates and "
                         "seeds; a sensitivity study compares cells sample by sample")
    ci = paired_difference(a[outcome], b[outcome], a["seed_index"], a.get("replicate"), n_boot=n_boot,
                           confidence=confidence)
    return {"value": ci.estimate, "low": ci.low, "high": ci.high}


def build_table(entries: list[tuple[str, str]], changes: dict[str, dict], combined: str | None,
                n_boot: int = N_BOOT) -> pd.DataFrame:
    """One row per (variant, cell, scale): metrics with intervals, and the paired change from the
    default variant's same cell at the default's scale.

    ``entries`` are (variant, metrics JSON) pairs; a file may serve several variants (a setting that
    cannot affect a cell, such as clipping x0-hat in a cell without it, reuses the default's samples).
    ``changes`` maps every variant to the settings it changes, for the table.
    """
    rows = []
    for variant, path in entries:
        if variant not in changes:
            raise ValueError(f"variant {variant!r} of {path} has no entry in the variants' changes")
        row = read_cell(path, needs="per_sample")
        rows.append({"variant": variant, **row})
    defaults = {tuple(r[k] for k in CELL_KEYS): r for r in rows if r["variant"] == DEFAULT}
    if not defaults:
        raise ValueError(f"no cell of the {DEFAULT!r} variant among the metrics: nothing to compare with")
    table = []
    for r in rows:
        key = tuple(r[k] for k in CELL_KEYS)
        if key not in defaults:
            raise ValueError(f"cell {key} of variant {r['variant']!r} has no {DEFAULT!r} counterpart")
        base = defaults[key]
        role = (DEFAULT if r["variant"] == DEFAULT else "combined" if r["variant"] == combined else "factor")
        if r["scale"] != base["scale"]:
            role = "sweep"
        out = {"variant": r["variant"], "role": role, "changes": _describe(changes[r["variant"]]),
               **{k: r[k] for k in CELL_KEYS}, "scale": r["scale"]}
        for metric in METRICS:
            out |= {c: r[c] for c in (metric, f"{metric}_low", f"{metric}_high")}
        for metric, outcome in zip(CHANGES, ("guide", "judge")):
            ch = _paired_change(r, base, outcome, n_boot, r["confidence"])
            out |= {f"{metric}_change": ch["value"], f"{metric}_change_low": ch["low"],
                    f"{metric}_change_high": ch["high"]}
        out |= {k: r[k] for k in ("seeds", "samples_per_seed", "features", "target", "confidence", "samples")}
        table.append(out)
    order = {v: i for i, v in enumerate(changes)}
    frame = pd.DataFrame(table)
    frame["_v"] = frame.variant.map(order)
    frame["_st"] = frame.stabiliser.map(stabiliser_order)
    frame = frame.sort_values(["_v", "scale", "classifier", "x0", "_st"], ascending=[True, True, False, True, True])
    return frame.drop(columns=["_v", "_st"]).reset_index(drop=True)


def _describe(change: dict) -> str:
    """{'guidance': {'clip_x0': True}, 'sampling': {'steps': None}} -> 'clip_x0=true, steps=all'."""
    def show(value) -> str:
        if value is None:
            return "all"
        if isinstance(value, bool):
            return str(value).lower()
        return f"{value:g}" if isinstance(value, (int, float)) else str(value)
    flat = {k: v for section in change.values() for k, v in section.items()}
    return ", ".join(f"{k}={show(v)}" for k, v in flat.items()) or "(the configured settings)"


def _estimate(row: pd.Series, column: str) -> Estimate:
    return Estimate(float(row[column]), float(row[f"{column}_low"]), float(row[f"{column}_high"]))


def verdict(change: Estimate) -> str:
    """From the paired change in accuracy alone (the paper's cell is far above ours)."""
    if change.low > 0:
        return TOWARDS
    if change.high < 0:
        return AWAY
    return NO_EFFECT


def reaches_paper(accuracy: Estimate) -> bool:
    paper = Estimate(PAPER_HEADLINE_ACCURACY, PAPER_HEADLINE_ACCURACY, PAPER_HEADLINE_ACCURACY)
    return approaches(accuracy, paper, ACCURACY_MARGIN) == HOLDS


def render(frame: pd.DataFrame, source: str) -> str:
    """The findings section: how much of the gap to the paper's 85.9% each setting closes."""
    headline = frame[(frame.classifier == HEADLINE[0]) & (frame.x0 == HEADLINE[1])
                     & (frame.stabiliser == HEADLINE[2])]
    study = headline[headline.role != "sweep"]
    if study.empty:
        return ("## Sensitivity of the headline cell\n\nThe study did not sample the non-robust "
                "x0-hat + ADAM cell.\n")
    base = study[study.role == DEFAULT].iloc[0]
    first = frame.iloc[0]
    gaps = {m: PAPER_HEADLINE_ACCURACY - base[m] for m in CHANGES}
    lines = [
        "## Sensitivity: why the paper's headline cell differs",
        "",
        f"Generated from `{source}`. The paper's non-robust x0-hat + ADAM cell reaches "
        f"{PAPER_HEADLINE_ACCURACY:.1%} accuracy under its guide; with the configured settings this run gives "
        f"{_estimate(base, 'accuracy').show(100)}% under the guide and "
        f"{_estimate(base, 'judge_accuracy').show(100)}% under the judge (s = {base['scale']:g}, "
        f"{first['samples_per_seed']} samples x {first['seeds']} seeds per cell). Each variant changes the "
        "settings named; its change is paired (same seeds, same initial noise) with a "
        f"{first['confidence']:.0%} bootstrap interval, and the share of the gap is that change divided by "
        f"the gap from the default to {PAPER_HEADLINE_ACCURACY:.1%} (guide: {gaps['accuracy'] * 100:.1f} points, "
        f"judge: {gaps['judge_accuracy'] * 100:.1f}). The verdict follows from the interval of the change "
        "in judge accuracy alone.",
        "",
        "| variant | changes | guide (%) | judge (%) | fooled (%) | FID | cosine | guide change (points) | "
        "judge change (points) | share of the gap closed (judge) | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += _variant_rows(study, gaps["judge_accuracy"])
    lines += _cells_by_variant(frame[frame.role != "sweep"])
    lines += _scale_sweep(headline[(headline.role == "sweep") | (headline.role == "combined")].sort_values("scale"))
    lines += ["", f"\"Reaches the paper\": the whole interval lies within {ACCURACY_MARGIN * 100:.0f} points "
              f"of {PAPER_HEADLINE_ACCURACY:.1%} or above it."]
    return "\n".join(lines) + "\n"


def _variant_rows(study: pd.DataFrame, judge_gap: float) -> list[str]:
    """One row of the headline table per variant: its estimates, paired changes, share of the gap, verdict."""
    lines = []
    for _, r in study.iterrows():
        judge_change = _estimate(r, "judge_accuracy_change")
        share = Estimate(*(x / judge_gap for x in (judge_change.value, judge_change.low, judge_change.high)))
        v = "(reference)" if r.role == DEFAULT else verdict(judge_change)
        if reaches_paper(_estimate(r, "judge_accuracy")):
            v += "; reaches the paper under the judge"
        elif reaches_paper(_estimate(r, "accuracy")):
            v += "; reaches the paper under the guide only"
        lines.append(
            f"| {r.variant} | {r.changes} | {_estimate(r, 'accuracy').show(100)} | "
            f"{_estimate(r, 'judge_accuracy').show(100)} | {_estimate(r, 'fooled').show(100)} | "
            f"{_estimate(r, 'fid').show(1, 0)} | {_cosine(r)} | {_estimate(r, 'accuracy_change').show(100)} | "
            f"{judge_change.show(100)} | {'' if r.role == DEFAULT else share.show(100, 0) + '%'} | {v} |")
    return lines


def _cells_by_variant(study: pd.DataFrame) -> list[str]:
    """Judge accuracy of every study cell (columns) under every variant (rows)."""
    cells = study.drop_duplicates(CELL_KEYS)[CELL_KEYS].values.tolist()
    lines = ["", "Judge accuracy (%) of every cell of the study, per variant:", "",
             "| variant | " + " | ".join(cell_name(tuple(c)) for c in cells) + " |",
             "| --- |" + " ---: |" * len(cells)]
    for variant, group in study.groupby("variant", sort=False):
        by_cell = {tuple(r[k] for k in CELL_KEYS): r for _, r in group.iterrows()}
        shown = [_estimate(by_cell[tuple(c)], "judge_accuracy").show(100) if tuple(c) in by_cell else ""
                 for c in cells]
        lines.append(f"| {variant} | " + " | ".join(shown) + " |")
    return lines


def _scale_sweep(sweep: pd.DataFrame) -> list[str]:
    """The headline cell over the swept scales, where there is a sweep."""
    if len(sweep) <= 1:
        return []
    best = sweep.loc[sweep.judge_accuracy.idxmax()]
    lines = ["", f"Guidance scale, headline cell under the `{best.variant}` settings "
             f"(the paper's scale was lost); best judge accuracy at s = {best.scale:g}:", "",
             "| s | guide (%) | judge (%) | fooled (%) | FID | cosine | reaches the paper |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for _, r in sweep.iterrows():
        reach = ("under the judge" if reaches_paper(_estimate(r, "judge_accuracy")) else
                 "under the guide only" if reaches_paper(_estimate(r, "accuracy")) else "no")
        lines.append(f"| {r.scale:g} | {_estimate(r, 'accuracy').show(100)} | "
                     f"{_estimate(r, 'judge_accuracy').show(100)} | {_estimate(r, 'fooled').show(100)} | "
                     f"{_estimate(r, 'fid').show(1, 0)} | {_cosine(r)} | {reach} |")
    return lines


def _cosine(row: pd.Series) -> str:
    return "" if pd.isna(row["cosine_mean"]) else _estimate(row, "cosine_mean").show(1, 2)
