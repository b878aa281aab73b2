"""The methods study's table and figure: every training-free guidance method under GradCheck's lens.

One row per preset and stabiliser (and the robust baseline), from the cells' metrics files: judge
and guide accuracy, fooled rate, FID, stability, informativeness, each with its hierarchical
interval, the compute one sample took, and the paired change in judge accuracy against the paper's
x0-hat preset with the same stabiliser (the cells start from the same noise, sample by sample).

Scales follow one rule. Every preset whose step is eq. 2's takes grid.scale, which the ablation
chose (the lowest FID on the feature network, never the judge); one s means the same mean shift in
each of them (gradcheck.guidance.guidance_shift). DPS's step, s grad log p / |log p|, is in other
units, so its preset lists scales of its own and the same rule picks its s: the lowest FID of its
unstabilised cell. Torch-free.
"""

from __future__ import annotations

import os

import pandas as pd

from .atomic import atomic_path, write_text
from .formatting import interval_text
from .plan import BASELINE
from .settings import CONFIDENCE, N_BOOT
from .stats import paired_difference
from .table import COMPUTE, read_cell, stabiliser_order

SHOWN = ["judge_accuracy", "accuracy", "fooled", "fid", "cosine_mean", "cosine_late", "informativeness"]
COLUMNS = (["preset", "method", "classifier", "x0", "stabiliser", "scale", "scale_rule", "steps"]
           + [c for m in SHOWN for c in (m, f"{m}_low", f"{m}_high")]
           + ["judge_vs_paper", "judge_vs_paper_low", "judge_vs_paper_high"] + COMPUTE
           + ["unet_passes", "replicates", "seeds", "samples_per_seed", "features"])


def parse_cells(specs: list[str]) -> list[tuple[str, str, str, str]]:
    """'preset=stabiliser=scale=path' -> (preset, stabiliser, scale, path); errors name the bad one."""
    cells = []
    for spec in specs:
        parts = spec.split("=", 3)
        if len(parts) != 4 or not all(parts):
            raise ValueError(f"--cells takes preset=stabiliser=scale=metrics.json, got {spec!r}")
        cells.append(tuple(parts))
    return cells


def choose_scales(rows: list[dict]) -> dict[str, float]:
    """preset -> its scale: the only one it was sampled at, or (its own scales) the lowest FID of its
    unstabilised cells."""
    chosen = {}
    for preset in dict.fromkeys(r["preset"] for r in rows):
        scales = sorted({r["scale"] for r in rows if r["preset"] == preset})
        if len(scales) == 1:
            chosen[preset] = scales[0]
            continue
        plain = [r for r in rows if r["preset"] == preset and r["stabiliser"] == "none"]
        if not plain:
            raise ValueError(f"preset {preset!r} has several scales but no unstabilised cell to choose one by FID")
        chosen[preset] = min(plain, key=lambda r: r["fid"])["scale"]
    return chosen


def build_table(cells: list[tuple[str, str, str, str]], own_scales=(), n_boot: int = N_BOOT,
                confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per preset and stabiliser at the preset's scale. ``own_scales``: the presets that list their own
    scales (methods.presets.<preset>.scales) rather than take grid.scale: each row's scale_rule says which."""
    rows = []
    for preset, stabiliser, scale, path in cells:
        row = read_cell(path, needs="per_sample")
        if row["stabiliser"] != stabiliser or abs(float(row["scale"]) - float(scale)) > 1e-12:
            raise ValueError(f"{path} holds stabiliser {row['stabiliser']} at s = {row['scale']}, "
                             f"not {stabiliser} at s = {scale} as --cells says")
        rows.append({**row, "preset": preset, "scale": float(scale), "path": str(path)})
    chosen = choose_scales(rows)
    fids = {p: ", ".join(f"{r['scale']:g}: {r['fid']:.1f}" for r in rows if r["preset"] == p and r["stabiliser"] == "none")
            for p in chosen}
    kept = [r for r in rows if r["scale"] == chosen[r["preset"]]]
    # the paper's x0-hat at the fewest steps (the study's, not a matched-compute preset's such as x0_hat_400):
    # each method's paired reference, stabiliser by stabiliser
    papers = {}
    for r in kept:
        if r["method"] == "paper" and r["x0"] and r["preset"] != BASELINE:
            if r["stabiliser"] not in papers or _steps(r) < _steps(papers[r["stabiliser"]]):
                papers[r["stabiliser"]] = r
    out = []
    for r in kept:
        several = sum(1 for x in rows if x["preset"] == r["preset"] and x["stabiliser"] == "none") > 1
        row = {k: r.get(k) for k in COLUMNS}
        row["scale_rule"] = (f"lowest FID of s = {fids[r['preset']]}" if several
                             else f"methods.presets.{r['preset']}.scales" if r["preset"] in own_scales else "grid.scale")
        paper = papers.get(r["stabiliser"])
        if paper is not None and paper is not r:
            a, b = r["per_sample"], paper["per_sample"]
            if a["seed_index"] == b["seed_index"] and a.get("replicate") == b.get("replicate"):
                ci = paired_difference(a["judge"], b["judge"], a["seed_index"], a.get("replicate"), n_boot=n_boot,
                                       confidence=confidence)
                row |= {"judge_vs_paper": ci.estimate, "judge_vs_paper_low": ci.low, "judge_vs_paper_high": ci.high}
        if row["unet_forward"] is not None:
            row["unet_passes"] = row["unet_forward"] + row["unet_backward"]
        out.append(row)
    frame = pd.DataFrame(out, columns=COLUMNS)
    order = {p: i for i, p in enumerate(dict.fromkeys(r["preset"] for r in rows))}
    frame = frame.sort_values(["preset", "stabiliser"], key=lambda c: c.map(order) if c.name == "preset"
                              else c.map(stabiliser_order))
    return frame.reset_index(drop=True)


def _steps(row) -> float:
    return float("inf") if row["steps"] in (None, "all") else int(row["steps"])


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    out = frame.copy()
    out["x0"] = out["x0"].map({True: "true", False: "false"})
    write_text(path, out.to_csv(index=False))


def methods_figure(frame: pd.DataFrame, path: str | os.PathLike, title: str) -> None:
    """Judge accuracy against UNet passes per sample, one marker per preset, filled with a stabiliser."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    colours = plt.get_cmap("tab10")
    presets = list(dict.fromkeys(frame["preset"]))
    offsets = {st: (i - (frame["stabiliser"].nunique() - 1) / 2) * 0.012
               for i, st in enumerate(dict.fromkeys(frame["stabiliser"]))}
    for i, preset in enumerate(presets):
        for _, r in frame[frame["preset"] == preset].iterrows():
            if pd.isna(r["unet_passes"]):
                continue
            # a nudge apart on the log axis, by preset and stabiliser: presets often cost the same
            x = r["unet_passes"] * (1 + 0.03 * (i - (len(presets) - 1) / 2) + offsets[r["stabiliser"]])
            y, low, high = (100 * r[c] for c in ("judge_accuracy", "judge_accuracy_low", "judge_accuracy_high"))
            plain = r["stabiliser"] == "none"
            ax.errorbar([x], [y], yerr=[[y - low], [high - y]], fmt="o" if plain else "s", ms=6, capsize=2,
                        color=colours(i % 10), mfc="white" if plain else colours(i % 10))
    # one legend entry per preset (its colour) and one per stabiliser (the marker), beside the axes
    handles = [Line2D([], [], color=colours(i % 10), marker="o", ls="", label=p) for i, p in enumerate(presets)]
    handles += [Line2D([], [], color="black", marker="o" if st == "none" else "s", mfc="white" if st == "none" else "black",
                       ls="", label="no stabiliser" if st == "none" else f"+ {st}") for st in offsets]
    ax.set_xscale("log")
    # a tick at each cost the study has: the range often spans less than a decade, without a major tick
    passes = sorted(int(p) for p in frame["unet_passes"].dropna().unique())
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(passes))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([str(p) for p in passes]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("UNet passes (forward + backward) per sample")
    ax.set_ylabel("judge accuracy % (interval)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)


def summary(frame: pd.DataFrame) -> str:
    """One line per row for the log: preset, stabiliser, judge accuracy and UNet passes."""
    lines = []
    for _, r in frame.iterrows():
        passes = "" if pd.isna(r["unet_passes"]) else f", {int(r['unet_passes'])} UNet passes"
        lines.append(f"{r['preset']:>16} {r['stabiliser']:>6}: judge {interval_text(r, 'judge_accuracy', factor=100)} %"
                     f"{passes}")
    return "\n".join(lines)
