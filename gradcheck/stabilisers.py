"""The stabiliser study's table, figure and answers: ADAM over a grid of betas, nrCG's EMA and the named
readings of three papers, each against no stabiliser from the same initial noise. Torch-free.

Every cell is a grid cell (``results/metrics/<classifier>/x0-<x0>_<stabiliser>_s-<scale>.json``) at the grid's
scale; the table adds each cell's paired change in judge accuracy against the same guide and look without a
stabiliser. Nothing here is chosen by the judge: the study reports the landscape, and where it names a
setting (``guide_pick``) it picks by the guide's own accuracy, which the judge then tests.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .atomic import atomic_path, write_text
from .formatting import interval_text
from .settings import CONFIDENCE, N_BOOT, STABILISER_PRESETS, parse_stabiliser
from .stats import paired_difference
from .table import CLASSIFIER_ORDER, read_cell, stabiliser_order

SHOWN = ["judge_accuracy", "accuracy", "fooled", "cosine_mean", "staleness", "spread"]
COLUMNS = (["classifier", "x0", "stabiliser", "kind", "beta1", "beta2", "ema_beta", "preset", "scale"]
           + [c for m in SHOWN for c in (m, f"{m}_low", f"{m}_high")]
           + ["judge_vs_none", "judge_vs_none_low", "judge_vs_none_high", "replicates", "n_samples"])
PRESET_OF = {name: preset for preset, name in STABILISER_PRESETS.items()}


def build_table(paths: list[str | os.PathLike], n_boot: int = N_BOOT, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per cell, with its paired change in judge accuracy against the same guide and look unstabilised."""
    cells = [read_cell(p, needs="per_sample") for p in paths]
    plain = {(c["classifier"], c["x0"]): c for c in cells if c["stabiliser"] == "none"}
    rows = []
    for cell in cells:
        kind, betas = parse_stabiliser(cell["stabiliser"])
        row = {k: cell.get(k) for k in COLUMNS}
        row |= {"kind": kind, "beta1": betas[0] if kind == "adam" else None,
                "beta2": betas[1] if kind == "adam" else None, "ema_beta": betas[0] if kind == "ema" else None,
                "preset": PRESET_OF.get(cell["stabiliser"]), "n_samples": len(cell["per_sample"]["judge"])}
        none = plain.get((cell["classifier"], cell["x0"]))
        if none is None:
            raise ValueError(f"no unstabilised cell for the {cell['classifier']} guide with x0={cell['x0']}: "
                             "the paired change needs it")
        a, b = cell["per_sample"], none["per_sample"]
        if (a["seed_index"], a.get("replicate")) != (b["seed_index"], b.get("replicate")):
            raise ValueError(f"{cell['stabiliser']} and none of the {cell['classifier']} guide were not sampled from "
                             "the same seeds: they cannot be paired")
        ci = paired_difference(a["judge"], b["judge"], a["seed_index"], a.get("replicate"), n_boot=n_boot,
                               confidence=confidence)
        row |= {"judge_vs_none": ci.estimate, "judge_vs_none_low": ci.low, "judge_vs_none_high": ci.high}
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.sort_values(["classifier", "x0", "stabiliser"], key=lambda c: (
        c.map(CLASSIFIER_ORDER) if c.name == "classifier" else c.map(stabiliser_order) if c.name == "stabiliser" else c))
    return frame.reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    out = frame.copy()
    out["x0"] = out["x0"].map({True: "true", False: "false"})
    write_text(path, out.to_csv(index=False))


def look_name(classifier: str, x0: bool) -> str:
    return f"{classifier} guide on {'x0-hat' if x0 else 'x_t'}"


def stability_correlation(frame: pd.DataFrame, n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = 0,
                          signal: str = "cosine_mean") -> tuple[float, float, float, int]:
    """Spearman's rho between a trace signal (default: the paper's stability, cosine_mean) and judge accuracy
    over the cells, with a percentile bootstrap interval over cells: (rho, low, high, cells)."""
    cells = frame.dropna(subset=[signal, "judge_accuracy"])
    x, y = cells[signal].to_numpy(), cells["judge_accuracy"].to_numpy()
    if len(x) < 3:
        return float("nan"), float("nan"), float("nan"), len(x)
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:  # a resample with one value has no rank correlation
            boots.append(spearmanr(x[idx], y[idx]).statistic)
    if not boots:  # the judge or the signal is constant over the cells: no rank correlation to resample
        return rho, float("nan"), float("nan"), len(x)
    low, high = np.percentile(boots, [50 * (1 - confidence), 50 * (1 + confidence)])
    return rho, float(low), float(high), len(x)


def _pct(row, metric: str) -> str:
    return interval_text(row, metric, "{:.1f}", 100) + " %"


def _change(row) -> str:
    return (f"{100 * row['judge_vs_none']:+.1f} [{100 * row['judge_vs_none_low']:+.1f}, "
            f"{100 * row['judge_vs_none_high']:+.1f}] points")


def guide_pick(cells: pd.DataFrame) -> pd.Series:
    """The stabilised cell the guide itself would choose: its highest guide accuracy, ties broken by the
    guide's stability (never the judge's verdict)."""
    stabilised = cells[cells["kind"] != "none"]
    return stabilised.sort_values(["accuracy", "cosine_mean"], ascending=False, kind="stable").iloc[0]


def answers(frame: pd.DataFrame, n_boot: int = N_BOOT, confidence: float = CONFIDENCE) -> str:
    """The study's answers in Markdown, each with its paired numbers."""
    level = f"{confidence:.0%}"
    lines = ["# The stabiliser study", "",
             f"Each cell against the same guide and look without a stabiliser, sampled from the same initial noise "
             f"({int(frame['n_samples'].iloc[0])} samples per cell, {int(frame['replicates'].iloc[0])} training "
             f"replicate(s)); intervals are {level} hierarchical bootstrap intervals. Staleness: cos(applied "
             "direction, this step's raw gradient), 1 without a stabiliser. Spread: ||d||_1 / (sqrt(n) ||d||_2) of "
             "the applied direction, 1 when every pixel moves alike.", ""]
    for (classifier, x0), cells in frame.groupby(["classifier", "x0"], sort=False):
        none = cells[cells["kind"] == "none"].iloc[0]
        lines += [f"## The {look_name(classifier, x0)}", "",
                  f"- No stabiliser: judge {_pct(none, 'judge_accuracy')}, staleness {none['staleness']:.2f}, "
                  f"spread {none['spread']:.2f}."]
        paper = cells[cells["stabiliser"] == "adam"]
        if len(paper):
            p = paper.iloc[0]
            verdict = ("hurts" if p["judge_vs_none_high"] < 0 else "helps" if p["judge_vs_none_low"] > 0
                       else "changes nothing decidable")
            lines.append(f"- The paper's ADAM (0.9, 0.999) {verdict}: judge {_pct(p, 'judge_accuracy')}, "
                         f"{_change(p)} against none; its applied direction has staleness {p['staleness']:.2f} and "
                         f"spread {p['spread']:.2f} (none: {none['staleness']:.2f}, {none['spread']:.2f}).")
        better = cells[(cells["kind"] != "none") & (cells["judge_vs_none_low"] > 0)]
        worse = cells[(cells["kind"] != "none") & (cells["judge_vs_none_high"] < 0)]
        lines.append("- Better than none under the judge (interval above 0): "
                     + (", ".join(f"{r.stabiliser} ({_change(r)})" for r in better.itertuples()) or "none of them")
                     + "; worse (interval below 0): "
                     + (", ".join(r.stabiliser for r in worse.itertuples()) or "none of them") + ".")
        pick = guide_pick(cells)
        lines += [f"- Picked by the guide's own accuracy: {pick['stabiliser']} (guide {_pct(pick, 'accuracy')}); "
                  f"the judge then says {_pct(pick, 'judge_accuracy')}, {_change(pick)} against none.", ""]
    rho, low, high, n = stability_correlation(frame, n_boot, confidence)
    lines += ["## Does higher stability predict a better outcome?", "",
              f"Spearman's rho between the paper's stability (mean consecutive-step cosine) and judge accuracy over "
              f"the study's {n} cells: {rho:+.2f} [{low:+.2f}, {high:+.2f}] ({level} bootstrap over cells). Within "
              "each guide and look, stability and staleness against judge accuracy:", ""]
    for (classifier, x0), cells in frame.groupby(["classifier", "x0"], sort=False):
        parts = []
        for signal, name in (("cosine_mean", "stability"), ("staleness", "staleness")):
            rho, low, high, n = stability_correlation(cells, n_boot, confidence, signal=signal)
            parts.append(f"{name} {rho:+.2f} [{low:+.2f}, {high:+.2f}]" if n >= 3 and np.isfinite(rho)
                         else f"{name}: no correlation (the judge or the signal is constant)")
        lines.append(f"- {look_name(classifier, x0)} ({n} cells): " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def heatmap_figure(frame: pd.DataFrame, path: str | os.PathLike, title: str) -> None:
    """Per look (rows of panels): judge accuracy and its paired change against none over ADAM's (beta1, beta2),
    with the cells that are not ADAM (none, the EMAs) on a row of their own below, each named in its cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    looks = list(frame.groupby(["classifier", "x0"], sort=False).groups)
    fig, axes = plt.subplots(len(looks), 2, figsize=(11, 3.2 * len(looks)), squeeze=False)
    for i, (classifier, x0) in enumerate(looks):
        cells = frame[(frame["classifier"] == classifier) & (frame["x0"] == x0)]
        adam, others = cells[cells["kind"] == "adam"], cells[cells["kind"] != "adam"]
        beta1s, beta2s = sorted(adam["beta1"].unique()), sorted(adam["beta2"].unique())
        width = max(len(beta2s), len(others))
        for j, (metric, cmap, limits) in enumerate((("judge_accuracy", "viridis", (0, 100)),
                                                   ("judge_vs_none", "RdBu", (-100, 100)))):
            ax = axes[i][j]
            grid, text = np.full((len(beta1s) + 1, width), np.nan), {}
            for r in adam.itertuples():
                a, b = beta1s.index(r.beta1), beta2s.index(r.beta2)
                grid[a, b], text[a, b] = 100 * getattr(r, metric), _cell_text(r, metric)
            for k, r in enumerate(others.itertuples()):  # the last row: each cell says what it is
                grid[-1, k], text[len(beta1s), k] = 100 * getattr(r, metric), f"{r.stabiliser}\n" + _cell_text(r, metric)
            image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto")
            for (a, b), label in text.items():
                middle = 0.25 < (grid[a, b] - limits[0]) / (limits[1] - limits[0]) < 0.75
                ax.text(b, a, label, ha="center", va="center", fontsize=6.5,
                        color="black" if middle or cmap == "RdBu" else "white")
            ax.axhline(len(beta1s) - 0.5, color="black", lw=1.5)
            ax.set_xticks(range(len(beta2s)))
            ax.set_xticklabels([f"ADAM b2={b:g}" for b in beta2s], fontsize=7)
            ax.set_yticks(range(len(beta1s) + 1))
            ax.set_yticklabels([f"ADAM b1={b:g}" for b in beta1s] + ["not ADAM"], fontsize=7)
            ax.set_title(f"{look_name(classifier, x0)}: "
                         + ("judge accuracy %" if metric == "judge_accuracy" else "change vs none, points"), fontsize=8)
            fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _cell_text(row, metric: str) -> str:
    value, low, high = (100 * getattr(row, c) for c in (metric, f"{metric}_low", f"{metric}_high"))
    return f"{value:.0f}\n[{low:.0f}, {high:.0f}]"
