"""Figures: gradient traces over time, sample grids, the scale ablation, classifier accuracies."""

from __future__ import annotations

import itertools
import os
import textwrap
import warnings

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from . import trace_quantities  # noqa: E402
from .settings import PAPER_HEADLINE_ACCURACY  # noqa: E402

# One colour per stabiliser and one line style per input of the classifier, the same in
# every figure; classifiers get the paper's figure 1 colours where they are compared.
STABILISER_COLOURS = {"none": "tab:blue", "adam": "tab:purple", "ema0.9": "tab:orange", "ema0.99": "tab:green"}
CLASSIFIER_COLOURS = {"robust": "tab:red", "nonrobust": "tab:blue"}
X0_STYLES = {False: "-", True: "--"}

def stabiliser_colour(name: str) -> str:
    return STABILISER_COLOURS.get(name, "tab:brown")


def variant_name(x0: bool, stabiliser: str) -> str:
    """'none', 'x0', 'adam', 'x0+adam', 'ema0.9', 'x0+ema0.9', ..."""
    if stabiliser == "none":
        return "x0" if x0 else "none"
    return f"x0+{stabiliser}" if x0 else stabiliser


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _band(ax, timesteps: np.ndarray, values: np.ndarray, label: str, colour, style: str = "-") -> bool:
    """Mean over samples and the band holding the central 90% of them, per step; False if all NaN."""
    keep = ~np.isnan(values).all(axis=1)
    if not keep.any():
        return False
    t, v = timesteps[keep], values[keep]
    low, high = np.nanpercentile(v, [5, 95], axis=1)
    ax.plot(t, np.nanmean(v, axis=1), label=label, color=colour, ls=style, lw=1.5)
    ax.fill_between(t, low, high, color=colour, alpha=0.15, lw=0)
    return True


def _time_axis(ax, t_max: float, quantity: str) -> None:
    q = trace_quantities.by_name()[quantity]
    ax.set_xlim(t_max, 0)  # sampling runs from T down to 0
    ax.set_yscale(q.scale)
    if q.limits:
        ax.set_ylim(*q.limits)
    if q.zero_line:
        ax.axhline(0, color="grey", lw=0.6, ls=":")
    ax.set_ylabel(q.axis, fontsize=8)
    ax.grid(alpha=0.3)


def cosine_figure(curves: list[dict], path: str | os.PathLike, title: str, quantity: str = "cosine") -> None:
    """One panel; ``curves``: dicts with label, timesteps (K,), values (K, B), colour."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for c in curves:
        _band(ax, c["timesteps"], c["values"], c["label"], c.get("colour"))
    _time_axis(ax, max(c["timesteps"].max() for c in curves), quantity)
    ax.set_xlabel("timestep t  (sampling runs left to right, from noise to image)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def trace_figure(cells: list[dict], quantity: str, path: str | os.PathLike, title: str) -> None:
    """A trace quantity over time: one panel per (classifier, x0), one line per stabiliser.

    ``cells``: dicts with classifier, x0, stabiliser, timesteps (K,) and values (K, B), B being
    every sample of every seed. Lines are means; bands hold the central 90% of samples.
    """
    order = list(CLASSIFIER_COLOURS)
    rows = sorted({c["classifier"] for c in cells}, key=lambda n: order.index(n) if n in order else len(order))
    cols = sorted({c["x0"] for c in cells})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.6 * len(cols), 3.0 * len(rows)),
                             squeeze=False, sharex=True, sharey=True)
    t_max = max(c["timesteps"].max() for c in cells)
    for (i, clf), (j, x0) in itertools.product(enumerate(rows), enumerate(cols)):
        ax = axes[i][j]
        drawn = [_band(ax, c["timesteps"], c["values"], c["stabiliser"], stabiliser_colour(c["stabiliser"]))
                 for c in cells if c["classifier"] == clf and c["x0"] == x0]
        _time_axis(ax, t_max, quantity)
        ax.set_title(f"{clf} classifier, classifies {'x0_hat' if x0 else 'x_t'}", fontsize=9)
        if any(drawn):
            ax.legend(fontsize=7, title="stabiliser", title_fontsize=7)
        if i == len(rows) - 1:
            ax.set_xlabel("timestep t (noise -> image)", fontsize=8)
    if trace_quantities.by_name()[quantity].scale == "log":
        axes[0][0].set_ylim(*_log_limits([c["values"] for c in cells]))  # shared by every panel
    fig.suptitle(title, fontsize=10)
    fig.text(0.5, -0.01, "lines: mean over samples; bands: the central 90% of samples", ha="center", fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def _log_limits(values: list[np.ndarray]) -> tuple[float, float]:
    """A log axis that shows the mean lines whole: a band's lower edge can reach 1e-19 (a saturated
    classifier's gradient) and would squash every line into the top of the panel."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.concatenate([np.nanmean(v, axis=1) for v in values])
        highs = np.concatenate([np.nanpercentile(v, 95, axis=1) for v in values])
    means, highs = means[np.isfinite(means) & (means > 0)], highs[np.isfinite(highs) & (highs > 0)]
    if not len(means):
        return 1e-3, 1.0
    return means.min() / 10, max(highs.max() if len(highs) else means.max(), means.max()) * 2


def tile(images: np.ndarray, columns: int, pad: int, rows: int | None = None) -> np.ndarray:
    """NHWC uint8 images laid out row by row on a grey canvas with ``pad`` px between them."""
    n, h, w, _ = images.shape
    rows = rows or -(-n // columns)
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 128, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top:top + h, left:left + w] = img
    return canvas


def sample_grid(images: np.ndarray, path: str | os.PathLike, columns: int = 8, zoom: int = 2) -> None:
    """NHWC uint8 images tiled into one PNG, upscaled (nearest) so small images stay visible."""
    canvas = tile(images, columns, pad=2)
    out = Image.fromarray(canvas).resize((canvas.shape[1] * zoom, canvas.shape[0] * zoom), Image.NEAREST)
    with atomic_path(path) as tmp:
        out.save(tmp, format="PNG")


def ablation_figure(frame: pd.DataFrame, path: str | os.PathLike, title: str) -> None:
    """FID and accuracy (guide and judge) against the guidance scale, with their intervals."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("fid", "FID (lower is better, log scale)", 1), ("accuracy", "accuracy under the guide (%)", 100),
              ("judge_accuracy", "accuracy under the judge (%)", 100)]
    for (clf, x0, stab), group in frame.groupby(["classifier", "x0", "stabiliser"]):
        group = group.sort_values("scale")
        style = dict(ls=X0_STYLES[bool(x0)], marker="o", ms=4, color=CLASSIFIER_COLOURS.get(clf),
                     label=f"{clf}, {variant_name(bool(x0), stab)}")
        for ax, (metric, _, factor) in zip(axes, panels):
            value = group[metric] * factor
            err = [value - group[f"{metric}_low"] * factor, group[f"{metric}_high"] * factor - value]
            ax.errorbar(group["scale"], value, yerr=err, capsize=3, **style)
    for ax, (metric, label, _) in zip(axes, panels):
        ax.set(xlabel="guidance scale s", ylabel=label)
        ax.set_yscale("log" if metric == "fid" else "linear")
        if metric != "fid":
            ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def classifier_figure(reports: dict[str, dict], path: str | os.PathLike) -> None:
    """Clean and noisy validation accuracy of each classifier (the paper's section 3.3 numbers)."""
    names = list(reports)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for offset, key, label in ((-0.18, "clean_accuracy", "clean"), (0.18, "noisy_accuracy", "noisy x_t, t ~ U")):
        values = [reports[n][key] * 100 for n in names]
        bars = ax.bar(x + offset, values, 0.36, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, names)
    ax.set(ylabel="validation accuracy (%)", ylim=(0, 110))
    ax.legend(fontsize=8)
    ax.set_title("classifiers on clean and on noisy validation images", fontsize=10)
    _save(fig, path)


def variant_panel(panels: list[dict], path: str | os.PathLike, title: str, per_panel: int = 16,
                  columns: int | None = None) -> None:
    """Sample grids of several variants (the paper's figures 7 and 8), ``columns`` per row.

    ``panels``: dicts with label and images (NHWC uint8); the first ``per_panel`` of each.
    """
    columns = columns or len(panels)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        images = panel["images"][:per_panel]
        side = int(np.ceil(np.sqrt(len(images))))
        ax.imshow(tile(images, side, pad=1, rows=side), interpolation="nearest")
        ax.set_title(panel["label"], fontsize=9)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def _interval(frame: pd.DataFrame, metric: str, factor: float = 100.0):
    """(values, [below, above]) for ``errorbar``."""
    value = frame[metric] * factor
    return value, [value - frame[f"{metric}_low"] * factor, frame[f"{metric}_high"] * factor - value]


def sensitivity_figure(frame: pd.DataFrame, headline: tuple, paper: float, path: str | os.PathLike,
                       title: str) -> None:
    """Which setting moves the headline cell (left), what it does to the other cells (middle), and the
    headline cell against the guidance scale under the combined settings (right). A panel the study has no
    data for (no other cells, no scale sweep) is left out rather than drawn empty."""
    study = frame[frame.role != "sweep"]
    variants = list(dict.fromkeys(study.variant))
    is_headline = ((frame.classifier == headline[0]) & (frame.x0 == headline[1])
                   & (frame.stabiliser == headline[2]))
    others = study[~is_headline[study.index]]
    sweep = frame[is_headline & frame.role.isin(["sweep", "combined"])].sort_values("scale")
    panels = {"headline": 1.3, **({"others": 1.1} if not others.empty else {}), **({"sweep": 1} if len(sweep) > 1 else {})}
    fig, row = plt.subplots(1, len(panels), figsize=(4.4 * sum(panels.values()), 0.45 * len(variants) + 2.2),
                            gridspec_kw={"width_ratios": list(panels.values())}, squeeze=False)
    axes = dict(zip(panels, row[0]))
    _sensitivity_headline_panel(axes["headline"], study[is_headline[study.index]], variants, headline, paper)
    if "others" in axes:
        _sensitivity_others_panel(axes["others"], others, variants)
    if "sweep" in axes:
        _sensitivity_sweep_panel(axes["sweep"], sweep, paper)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _variant_rows_axis(ax, variants: list[str], labels: bool) -> None:
    """One row per variant, top to bottom, accuracy 0-100% across, the legend below."""
    ax.set_yticks(range(len(variants)), variants if labels else [""] * len(variants))
    ax.set_ylim(len(variants) - 0.5, -0.5)
    ax.set_xlim(-3, 103)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2)


def _sensitivity_headline_panel(ax, cell: pd.DataFrame, variants: list[str], headline: tuple, paper: float) -> None:
    y = {v: i for i, v in enumerate(variants)}
    for metric, name, marker, offset, colour in (("judge_accuracy", "judge", "o", -0.15, "tab:blue"),
                                                 ("accuracy", "guide", "s", 0.15, "tab:grey")):
        value, err = _interval(cell, metric)
        ax.errorbar(value, cell.variant.map(y) + offset, xerr=err, fmt=marker, color=colour, capsize=3,
                    mfc=colour if name == "judge" else "white", label=f"under the {name}")
    default = cell[cell.role == "default"]
    if not default.empty:
        ax.axvline(default.judge_accuracy.iloc[0] * 100, color="tab:blue", ls=":", lw=1, label="default, judge")
    ax.axvline(paper * 100, color="black", ls="--", lw=1, label=f"paper {paper:.1%}")
    ax.set_title(f"{headline[0]}, x0-hat + ADAM: accuracy (%)", fontsize=9)
    _variant_rows_axis(ax, variants, labels=True)


def _sensitivity_others_panel(ax, others: pd.DataFrame, variants: list[str]) -> None:
    y = {v: i for i, v in enumerate(variants)}
    groups = list(others.groupby(["classifier", "x0", "stabiliser"], sort=False))
    palette = iter(["tab:blue", "tab:purple", "tab:orange", "tab:green", "tab:brown", "tab:olive", "tab:cyan"])
    for j, ((clf, x0, stab), group) in enumerate(groups):
        value, err = _interval(group, "judge_accuracy")
        offset = (j - (len(groups) - 1) / 2) * 0.15
        ax.errorbar(value, group.variant.map(y) + offset, xerr=err, fmt="o", ms=4, capsize=2,
                    color=CLASSIFIER_COLOURS["robust"] if clf == "robust" else next(palette),
                    label=f"{clf}, {variant_name(bool(x0), stab)}")
    ax.set_title("the other cells: accuracy under the judge (%)", fontsize=9)
    _variant_rows_axis(ax, variants, labels=False)


def _sensitivity_sweep_panel(ax, sweep: pd.DataFrame, paper: float) -> None:
    for metric, name, marker, colour in (("judge_accuracy", "judge", "o", "tab:blue"),
                                         ("accuracy", "guide", "s", "tab:grey")):
        value, err = _interval(sweep, metric)
        ax.errorbar(sweep.scale, value, yerr=err, marker=marker, color=colour, capsize=3,
                    mfc=colour if name == "judge" else "white", label=f"under the {name}")
    ax.axhline(paper * 100, color="black", ls="--", lw=1, label=f"paper {paper:.1%}")
    ax.set_xscale("log")
    ax.set_xticks(sweep.scale, [f"{s:g}" for s in sweep.scale])
    ax.minorticks_off()
    ax.set(xlabel="guidance scale s", ylim=(-3, 103))
    ax.set_title(f"x0-hat + ADAM against s, `{sweep.variant.iloc[0]}` settings", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)  # below the x label
    ax.grid(alpha=0.3)


def ddpm_quality_figure(frame: pd.DataFrame, path: str | os.PathLike, title: str, fid_goal: float = 3.0,
                        share_band: tuple[float, float] = (0.6, 1.4)) -> None:
    """FID ratio to real-vs-real and the judge's class mix of unguided samples (with its intervals), against step.

    ``share_band`` is the class-mix goal as multiples of a uniform share: 0.6 to 1.4 is the
    issue's 15% to 35% for 4 classes, 6% to 14% for 10. A brought DDPM has no training: its
    one row (step empty) is drawn as a single marked point.
    """
    frame = frame.assign(step=pd.to_numeric(frame["step"], errors="coerce")).sort_values("step")
    brought = bool(frame["step"].isna().all())
    if brought:
        frame = frame.assign(step=0.0)
    shares = [c[len("share_"):] for c in frame.columns if c.startswith("share_")]
    # share_<class>_low/_high are a class's interval, not classes of their own
    classes = [n for n in shares if not any(n in (f"{m}_low", f"{m}_high") for m in shares)]
    fig, (ax_fid, ax_mix) = plt.subplots(1, 2, figsize=(11, 3.6))
    # one curve per training replicate (results/ddpm.csv's replicate column), told apart by marker
    replicates = sorted(frame["replicate"].unique()) if "replicate" in frame else [None]
    markers = dict(zip(replicates, "os^vDP*X"))
    for r in replicates:
        rows = frame if r is None else frame[frame["replicate"] == r]
        ax_fid.plot(rows["step"], rows["fid_ratio"], f"{markers[r]}-", color="black",
                    label="samples vs real" + ("" if r is None or len(replicates) == 1 else f", replicate {r}"))
    ax_fid.axhline(fid_goal, ls="--", color="tab:green", label=f"goal: {fid_goal:g}x real vs real")
    ax_fid.axhline(1, ls=":", color="grey", label="real vs real (the floor at this size)")
    ax_fid.set(xlabel="training step", ylabel="FID / FID(real, real)  (log scale)", yscale="log")
    ax_fid.legend(fontsize=7)
    # the x-axis' width, for side-by-side bars: a single point's axis is about its own size (a brought DDPM's: 2)
    span = float(frame["step"].max() - frame["step"].min()) or (2.0 if brought else max(abs(frame["step"].max()), 1))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    slots = len(classes) * len(replicates)
    for i, name in enumerate(classes):
        for j, r in enumerate(replicates):
            rows = frame if r is None else frame[frame["replicate"] == r]
            share = rows[f"share_{name}"] * 100
            if f"share_{name}_low" in rows:  # the interval, as error bars
                yerr = (share - rows[f"share_{name}_low"] * 100, rows[f"share_{name}_high"] * 100 - share)
            else:
                yerr = None
            slot = i * len(replicates) + j
            dodge = (slot - (slots - 1) / 2) * 0.012 * span  # side by side, so the bars do not hide each other
            ax_mix.errorbar(rows["step"] + dodge, share, yerr=yerr, fmt=f"{markers[r]}-", ms=4, capsize=3,
                            color=colours[i % len(colours)], label=name if j == 0 else None)
    low, high = (share / len(classes) for share in share_band)
    ax_mix.axhspan(low * 100, high * 100, color="tab:green", alpha=0.12,
                   label=f"goal: {low:.0%} to {high:.0%} each ({share_band[0]:g}x to {share_band[1]:g}x uniform)")
    bars = f"\n(bars: {frame['confidence'].iloc[0]:.0%} Wilson interval)" if "confidence" in frame else ""
    ax_mix.set(xlabel="training step", ylabel=f"share of unguided samples (%), judge{bars}", ylim=(-2, 102))
    ax_mix.legend(fontsize=7, ncol=2)
    for ax in (ax_fid, ax_mix):
        ax.grid(alpha=0.3)
        if brought:
            ax.set_xlim(-1, 1)
            ax.set_xticks([0], ["final weights"])
            ax.set_xlabel("brought DDPM: no training curve")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


# One marker per training replicate (colours from the tab10 cycle), the same in every figure.
REPLICATE_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h")


def _require(frame: pd.DataFrame, columns, name: str) -> None:
    """ValueError naming every column of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {', '.join(map(repr, missing))}")


def _yerr(value, low, high):
    """[below, above] for ``errorbar``; NaN where an end is not known (matplotlib draws no bar there)."""
    below, above = (np.asarray(d, dtype=float) for d in (value - low, high - value))
    if (below < -1e-9).any() or (above < -1e-9).any():  # NaN compares False: allowed
        raise ValueError("an interval does not contain its estimate (low <= value <= high)")
    return [np.where(below < 0, 0.0, below), np.where(above < 0, 0.0, above)]


def replicate_figure(pooled: pd.DataFrame, per_replicate: pd.DataFrame, out: str | os.PathLike,
                     title: str = "") -> None:
    """Each cell's pooled estimate with its interval, and every training replicate's value beside it.

    ``pooled``: one row per cell, with label, judge_accuracy, judge_accuracy_low and
    judge_accuracy_high (fractions); ``per_replicate``: label, replicate (int) and judge_accuracy.
    Cells are drawn in the order of ``pooled``. Where ``pooled`` also has accuracy, accuracy_low
    and accuracy_high and ``per_replicate`` has accuracy, a second panel shows the guide's.
    Written whole or not at all.
    """
    labels = _check_replicate_frames(pooled, per_replicate)
    panels = [("judge_accuracy", "accuracy under the judge (%)")]
    if {"accuracy", "accuracy_low", "accuracy_high"} <= set(pooled.columns) and "accuracy" in per_replicate:
        panels.append(("accuracy", "accuracy under the guide (%)"))

    replicates = sorted(int(r) for r in per_replicate["replicate"].unique())
    # the pooled bar left of the cell's tick, the replicates in a fixed row right of it: the same
    # replicate at the same place in every cell, so no dot hides another
    spread = min(0.36, 0.08 * max(len(replicates), 1))
    dodge = {r: 0.06 + (spread * (j + 0.5) / len(replicates)) for j, r in enumerate(replicates)}
    width = max(4.0, max(0.75, 0.17 * len(replicates)) * len(labels) + 1.2)  # room for every replicate's dot
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 4.2), squeeze=False, sharey=True)
    try:
        for ax, (metric, ylabel) in zip(axes[0], panels):
            _replicate_panel(ax, metric, ylabel, pooled, per_replicate, labels, dodge)
        handles, names = axes[0][0].get_legend_handles_labels()
        first = [i for i, n in enumerate(names) if n.startswith("pooled")]  # the pooled estimate first
        order = first + [i for i in range(len(names)) if i not in first]
        handles, names = [handles[i] for i in order], [names[i] for i in order]
        axes[0][-1].legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           borderaxespad=0)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        _save(fig, out)
    finally:
        plt.close(fig)


def _check_replicate_frames(pooled: pd.DataFrame, per_replicate: pd.DataFrame) -> list[str]:
    """The cells' labels, once each, where every replicate's cell is one of them."""
    _require(pooled, ["label", "judge_accuracy", "judge_accuracy_low", "judge_accuracy_high"], "pooled")
    _require(per_replicate, ["label", "replicate", "judge_accuracy"], "per_replicate")
    labels = [str(label) for label in pooled["label"]]
    if len(set(labels)) != len(labels):
        raise ValueError("pooled has a label more than once: one row per cell")
    unknown = sorted(set(per_replicate["label"].astype(str)) - set(labels))
    if unknown:
        raise ValueError(f"per_replicate has cells that pooled lacks: {', '.join(unknown)}")
    return labels


def _replicate_panel(ax, metric, ylabel, pooled, per_replicate, labels, dodge) -> None:
    """One metric: each cell's pooled estimate and interval, and each replicate's value at its own offset."""
    x = {label: i for i, label in enumerate(labels)}
    value = pooled[metric].to_numpy(float) * 100
    err = _yerr(value, pooled[f"{metric}_low"].to_numpy(float) * 100, pooled[f"{metric}_high"].to_numpy(float) * 100)
    bars = ax.errorbar(np.arange(len(labels)) - 0.12, value, yerr=err, fmt="D", ms=6, color="black",
                       capsize=4, lw=1.4, zorder=3, label="pooled over replicates\n(bar: hierarchical bootstrap interval)")
    for artist in bars.get_children():  # a value at 0 or 100% is drawn whole, not cut at the frame
        artist.set_clip_on(False)
    for j, r in enumerate(dodge):
        rows = per_replicate[per_replicate["replicate"].astype(int) == r]
        ax.plot(rows["label"].astype(str).map(x) + dodge[r], rows[metric].to_numpy(float) * 100,
                ls="none", marker=REPLICATE_MARKERS[j % len(REPLICATE_MARKERS)], ms=5, alpha=0.85,
                color=plt.get_cmap("tab10")(j % 10), clip_on=False, zorder=4, label=f"replicate {r}")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_tick_params(labelleft=True)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(ylabel.replace(" (%)", ""), fontsize=9)


def _place_labels(points: np.ndarray, texts: list[str], obstacles: list[tuple], fontsize: float,
                  axes_size_pt: tuple[float, float]) -> list[tuple[float, float, str]]:
    """Where each point's label goes, in axes fractions, so that labels overlap neither each other
    nor the boxes in ``obstacles`` (markers, error bars; (x0, x1, y0, y1) in axes fractions).

    Greedy, from the top point down: each label tries beside its point, to the right then to the
    left, then steps further up and down until it finds free room. Returns (x, y, ha) per label.
    """
    width_pt, height_pt = axes_size_pt
    char_w, line_h = 0.55 * fontsize / width_pt, 1.25 * fontsize / height_pt
    gap = 5 / width_pt
    placed, boxes = [None] * len(texts), list(obstacles)

    def free(box):
        x0, x1, y0, y1 = box
        if x0 < 0 or x1 > 1 or y0 < 0 or y1 > 1:
            return False
        return not any(x0 < b[1] and b[0] < x1 and y0 < b[3] and b[2] < y1 for b in boxes)

    for i in sorted(range(len(texts)), key=lambda k: -points[k][1]):
        (px, py), w = points[i], char_w * len(texts[i])
        choice = None
        for step in range(0, 40):
            for dy in ((0.0,) if step == 0 else (step * 0.5 * line_h, -step * 0.5 * line_h)):
                for ha in ("left", "right"):
                    x0 = px + gap if ha == "left" else px - gap - w
                    box = (x0, x0 + w, py + dy - 0.5 * line_h, py + dy + 0.5 * line_h)
                    if free(box):
                        choice = (x0 if ha == "left" else x0 + w, py + dy, ha, box)
                        break
                if choice:
                    break
            if choice:
                break
        if choice is None:  # no free room: beside the point, overlapping
            choice = (px + gap, py, "left", (px + gap, px + gap + w, py - 0.5 * line_h, py + 0.5 * line_h))
        placed[i] = choice[:3]
        boxes.append(choice[3])
    return placed


HEADLINE_STYLE = {"earlier": ("dimgrey", "white", "earlier DDPMs (hollow)", 3),  # colour, face, legend, z-order
                  "this run": ("tab:blue", "tab:blue", "this run (filled)", 5)}


def headline_fid_figure(points: pd.DataFrame, out: str | os.PathLike, paper: float = PAPER_HEADLINE_ACCURACY,
                        title: str = "", note: str = "") -> dict:
    """The headline cell's accuracy under the judge against its DDPM's FID ratio (to real vs real).

    ``points``: label, source ("this run" or "earlier"), fid_ratio, judge_accuracy,
    judge_accuracy_low and judge_accuracy_high (fractions; NaN where a point has no interval).
    The x axis is reversed, so better DDPMs (lower FID ratio) lie to the right. A least-squares
    line of judge accuracy on FID ratio over all points is drawn over the x range of the data
    only. Returns ``{"slope", "intercept", "n"}``, slope and intercept in accuracy fraction per
    unit of FID ratio; both are None (and no line is drawn) with fewer than 2 distinct FID ratios.
    ``note`` is printed under the axes (for example, which points were left out and why).
    Written whole or not at all.
    """
    _require(points, ["label", "source", "fid_ratio", "judge_accuracy", "judge_accuracy_low",
                      "judge_accuracy_high"], "points")
    unknown = sorted(set(map(str, points["source"])) - set(HEADLINE_STYLE))
    if unknown:
        raise ValueError(f"source must be 'this run' or 'earlier', not {unknown}")
    x = points["fid_ratio"].to_numpy(float)
    y = points["judge_accuracy"].to_numpy(float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("every point needs a finite fid_ratio and judge_accuracy")
    fit = {"slope": None, "intercept": None, "n": int(len(x))}
    if len(np.unique(x)) >= 2:
        slope, intercept = np.polyfit(x, y, 1)
        fit.update(slope=float(slope), intercept=float(intercept))

    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    try:
        low, high = (x.min(), x.max()) if len(x) else (1.0, 1.0)
        pad = 0.1 * (high - low) if high > low else 0.25
        xlim = (high + pad, max(low - pad, 0))  # reversed: better DDPMs to the right
        ax.set_xlim(*xlim)
        ax.set_ylim(0, 100)
        _draw_headline(ax, points, fit, (low, high), paper)
        _label_headline_points(fig, ax, points, fit, (low, high), xlim, paper)
        ax.set(xlabel="DDPM's FID / real-vs-real FID   (axis reversed: better DDPM to the right \u2192)",
               ylabel="accuracy under the judge (%)")
        ax.grid(alpha=0.3)
        legend = ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
        ax.set_title(title or "headline cell (non-robust, x0-hat + ADAM) against the DDPM's quality", fontsize=10)
        if note:  # under the legend; bbox_inches="tight" keeps it in the file
            fig.canvas.draw()
            below = legend.get_window_extent().transformed(fig.transFigure.inverted()).y0
            fig.text(0.5, below - 0.02, textwrap.fill(note, 110), ha="center", va="top", fontsize=6.5, color="dimgrey")
        _save(fig, out)
    finally:
        plt.close(fig)
    return fit


def _draw_headline(ax, points, fit, span, paper):
    """The paper's line, the fitted line (or a note that there is none) and the points with their intervals."""
    ax.axhline(paper * 100, color="black", ls="--", lw=1, label=f"paper: {paper:.1%} (under its own guide)")
    ax.annotate(f"paper {paper:.1%}", (0.01, paper * 100), xycoords=("axes fraction", "data"),
                xytext=(0, 3), textcoords="offset points", fontsize=7)
    if fit["slope"] is not None:
        span = np.array(span)
        ax.plot(span, (fit["slope"] * span + fit["intercept"]) * 100, color="tab:red", lw=1.2, zorder=2,
                label=f"least squares over the {fit['n']} points: {fit['slope'] * 100:+.1f} points of accuracy "
                      "per +1x of FID ratio\n(drawn over the measured range only)")
    else:
        ax.text(0.01, 0.02, "no fitted line: fewer than 2 distinct FID ratios", transform=ax.transAxes,
                fontsize=7, color="grey")
    for source, (colour, face, name, z) in HEADLINE_STYLE.items():
        rows = points[points["source"] == source]
        if rows.empty:
            continue
        value = rows["judge_accuracy"].to_numpy(float) * 100
        err = _yerr(value, rows["judge_accuracy_low"].to_numpy(float) * 100,
                    rows["judge_accuracy_high"].to_numpy(float) * 100)
        ax.errorbar(rows["fid_ratio"], value, yerr=err, fmt="o", ms=7, capsize=3, color=colour, mfc=face,
                    mew=1.4, elinewidth=1.1, zorder=z, label=name)


def _label_headline_points(fig, ax, points, fit, span, xlim, paper):
    """Each point's label in a free spot beside it: markers, error bars, the lines and their labels are obstacles."""
    fig.canvas.draw()
    bbox = ax.get_window_extent()
    size_pt = (bbox.width * 72 / fig.dpi, bbox.height * 72 / fig.dpi)

    def fraction(a):  # an FID ratio as a fraction of the reversed x axis
        return (xlim[0] - a) / (xlim[0] - xlim[1])

    fx = fraction(points["fid_ratio"].to_numpy(float))
    fy = points["judge_accuracy"].to_numpy(float)
    lo = points["judge_accuracy_low"].to_numpy(float)
    hi = points["judge_accuracy_high"].to_numpy(float)
    mx, my = 5 / size_pt[0], 5 / size_pt[1]
    obstacles = [(a - mx, a + mx, b - my, b + my) for a, b in zip(fx, fy)]
    obstacles += [(a - 3.5 / size_pt[0], a + 3.5 / size_pt[0], l, h)
                  for a, l, h in zip(fx, lo, hi) if np.isfinite(l) and np.isfinite(h)]
    if fit["slope"] is not None:  # the fitted line, as a chain of small boxes
        for a in np.linspace(*span, 40):
            b = fit["slope"] * a + fit["intercept"]
            obstacles.append((fraction(a) - 0.005, fraction(a) + 0.005, b - 0.006, b + 0.006))
    obstacles.append((0.0, 0.15, paper - 0.01, paper + 0.045))  # the paper line's own label
    if fit["slope"] is None:
        obstacles.append((0.0, 0.45, 0.0, 0.06))  # the no-line note
    texts = [str(t) for t in points["label"]]
    placed = _place_labels(np.column_stack([fx, fy]), texts, obstacles, 6.5, size_pt)
    for (px, py), (tx, ty, ha), text, source in zip(zip(fx, fy), placed, texts, points["source"]):
        colour = HEADLINE_STYLE[source][0]
        moved = abs(ty - py) > 0.02
        ax.annotate(text, (px, py), xytext=(tx, ty), xycoords="axes fraction", textcoords="axes fraction",
                    fontsize=6.5, color=colour, ha=ha, va="center", zorder=6,
                    arrowprops=dict(arrowstyle="-", color=colour, lw=0.5, alpha=0.7, shrinkA=0, shrinkB=4)
                    if moved else None)
