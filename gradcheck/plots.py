"""Figures: cosine similarity over time, sample grids, the scale ablation, classifier accuracies."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from .atomic import atomic_path  # noqa: E402

# One colour per variant, kept the same in every figure (the paper's figure 2 colours).
VARIANT_COLOURS = {"none": "tab:blue", "x0": "tab:orange", "adam": "tab:purple", "x0+adam": "tab:green"}
# and one per classifier where classifiers are compared (the paper's figure 1 colours)
CLASSIFIER_COLOURS = {"robust": "tab:red", "nonrobust": "tab:blue"}
VARIANT_STYLES = {"none": "-", "x0": "--", "adam": ":", "x0+adam": "-."}


def variant_name(x0: bool, adam: bool) -> str:
    return {(False, False): "none", (True, False): "x0", (False, True): "adam", (True, True): "x0+adam"}[(x0, adam)]


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)


def cosine_figure(curves: list[dict], path: str | os.PathLike, title: str) -> None:
    """``curves``: dicts with label, timesteps (K,), cosine (K, B). Mean and +-1 std over the batch."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for c in curves:
        cos = c["cosine"]
        keep = ~np.isnan(cos).all(axis=1)
        t, mean, std = c["timesteps"][keep], np.nanmean(cos[keep], 1), np.nanstd(cos[keep], 1)
        colour = c.get("colour")
        ax.plot(t, mean, label=c["label"], color=colour, lw=1.6)
        ax.fill_between(t, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    ax.set_xlim(max(c["timesteps"].max() for c in curves), 0)  # sampling runs from T down to 0
    ax.set_ylim(-0.3, 1.05)
    ax.axhline(0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("timestep t  (sampling runs left to right, from noise to image)")
    ax.set_ylabel("cos(g_t, g_t+1)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)


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
    """FID and accuracy against the guidance scale, one line per (classifier, variant)."""
    fig, (ax_fid, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    for (clf, x0, adam), group in frame.groupby(["classifier", "x0", "adam"]):
        group = group.sort_values("scale")
        variant = variant_name(x0, adam)
        style = dict(ls=VARIANT_STYLES[variant], marker="o", color=CLASSIFIER_COLOURS.get(clf), label=f"{clf}, {variant}")
        ax_fid.plot(group["scale"], group["fid"], **style)
        ax_acc.plot(group["scale"], group["accuracy"] * 100, **style)
    ax_fid.set(xlabel="guidance scale s", ylabel="FID (lower is better, log scale)", yscale="log")
    ax_acc.set(xlabel="guidance scale s", ylabel="accuracy under guiding classifier (%)", ylim=(-2, 102))
    for ax in (ax_fid, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
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


def variant_panel(panels: list[dict], path: str | os.PathLike, title: str, per_panel: int = 16) -> None:
    """Side-by-side sample grids of several variants (the paper's figures 7 and 8).

    ``panels``: dicts with label and images (NHWC uint8); the first ``per_panel`` of each.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        images = panel["images"][:per_panel]
        side = int(np.ceil(np.sqrt(len(images))))
        ax.imshow(tile(images, side, pad=1, rows=side), interpolation="nearest")
        ax.set_title(panel["label"], fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
