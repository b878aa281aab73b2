"""Table 1: one row per (classifier, x0, adam, scale) cell, as CSV, Markdown and LaTeX."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .atomic import write_text

COLUMNS = ["classifier", "x0", "adam", "scale", "fid", "accuracy", "n", "cosine_mean", "fid_features", "target"]


def load_cells(paths: list[str | os.PathLike]) -> pd.DataFrame:
    rows = []
    for path in paths:
        try:
            rows.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cell metrics {path} unreadable: {exc}") from exc
    frame = pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"cell metrics lack columns {missing}")
    frame = frame[COLUMNS].sort_values(["classifier", "x0", "adam", "scale"],
                                       key=lambda c: c.map({"robust": 0, "nonrobust": 1}) if c.name == "classifier" else c)
    return frame.reset_index(drop=True)


def _pretty(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame.copy()
    shown["accuracy"] = (shown["accuracy"] * 100).map("{:.2f}%".format)
    shown["fid"] = shown["fid"].map("{:.3f}".format)
    shown["cosine_mean"] = shown["cosine_mean"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    shown["x0"] = shown["x0"].map({True: "yes", False: "no"})
    shown["adam"] = shown["adam"].map({True: "yes", False: "no"})
    return shown


def write_table(frame: pd.DataFrame, csv_path: str | os.PathLike) -> None:
    """Write ``csv_path`` and its ``.md`` and ``.tex`` renderings beside it."""
    csv_path = Path(csv_path)
    out = frame.copy()
    out["x0"] = out["x0"].map({True: "true", False: "false"})
    out["adam"] = out["adam"].map({True: "true", False: "false"})
    write_text(csv_path, out.to_csv(index=False))
    features = ", ".join(sorted(frame["fid_features"].unique()))
    note = (f"\n\nFID of {frame['n'].iloc[0]} target-class training images against as many samples, "
            f"on {features} features; accuracy under the guiding classifier; cosine_mean is the mean over "
            f"steps and samples of the consecutive-step cosine similarity of the guidance direction.\n")
    write_text(csv_path.with_suffix(".md"), _pretty(frame).to_markdown(index=False, disable_numparse=True) + note)
    write_text(csv_path.with_suffix(".tex"), _pretty(frame).to_latex(index=False, escape=True))
