"""Table 1: one row per (classifier, x0, stabiliser, scale) cell, as CSV, Markdown and LaTeX.

Every metric is a mean over training replicates, sampling seeds and samples with its
hierarchical bootstrap interval, kept
as three columns (``m``, ``m_low``, ``m_high``) in the CSV and shown as ``m [low, high]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from . import measures
from .atomic import write_text
from .formatting import interval_text
from .settings import parse_stabiliser

KEYS = ["classifier", "x0", "stabiliser", "adam", "scale"]
METRICS = measures.names()  # gradcheck/measures.py: Table 1's metric columns, in order
COMPUTE = ["unet_forward", "unet_backward", "classifier_forward", "classifier_backward"]  # per sample
INFO = COMPUTE + ["replicates", "n", "seeds", "samples_per_seed", "features", "target", "confidence"]


def columns() -> list[str]:
    """Table 1's CSV columns: the keys, every measure with its interval, the compute and the run's facts."""
    return KEYS + [c for m in measures.names() for c in (m, f"{m}_low", f"{m}_high")] + INFO


CLASSIFIER_ORDER = {"robust": 0, "nonrobust": 1}


def stabiliser_order(name: str) -> tuple:
    """none, the paper's adam, other betas' adam by (beta1, beta2), then EMAs by beta."""
    kind, betas = parse_stabiliser(name)
    return (0, ()) if kind == "none" else (1, ()) if name == "adam" else (2 if kind == "adam" else 3, betas)


def read_cell(path: str | os.PathLike, needs: str | None = None) -> dict:
    """One cell's metrics JSON from `gradcheck evaluate`; ``needs``: a key it must have (named if missing)."""
    try:
        row = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cell metrics {path} unreadable: {exc}") from exc
    if needs and needs not in row:
        raise ValueError(f"{path} has no {needs!r}; rerun `gradcheck evaluate` on it")
    return row


def load_cells(paths: list[str | os.PathLike]) -> pd.DataFrame:
    frame = pd.DataFrame([read_cell(path) for path in paths])
    for measure in (m for m in measures.MEASURES if m.since):  # metrics files from before it: not measured
        for column in (measure.name, f"{measure.name}_low", f"{measure.name}_high"):
            if column not in frame.columns:
                frame[column] = float("nan")
    table_columns = columns()
    missing = [c for c in table_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"cell metrics lack columns {missing}")
    order = {"classifier": lambda c: c.map(CLASSIFIER_ORDER), "stabiliser": lambda c: c.map(stabiliser_order)}
    frame = frame[table_columns].sort_values(["classifier", "x0", "stabiliser", "scale"],
                                       key=lambda c: order[c.name](c) if c.name in order else c)
    return frame.reset_index(drop=True)


def _with_interval(frame: pd.DataFrame, metric: str, fmt: str, factor: float = 1.0) -> pd.Series:
    return frame.apply(lambda row: interval_text(row, metric, fmt, factor), axis=1)


def pretty(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it: percentages, intervals in brackets, yes/no."""
    shown = frame[KEYS].copy()
    shown["x0"] = shown["x0"].map({True: "yes", False: "no"})
    shown = shown.drop(columns="adam")
    shown["scale"] = shown["scale"].map("{:g}".format)
    for m in measures.MEASURES:
        shown[m.heading] = _with_interval(frame, m.name, m.fmt(), m.factor)
    shown["UNet fwd + bwd / sample"] = frame.apply(
        lambda r: "" if pd.isna(r["unet_forward"]) else f"{int(r['unet_forward'])} + {int(r['unet_backward'])}", axis=1)
    shown["classifier passes / sample"] = frame["classifier_forward"].map(lambda v: "" if pd.isna(v) else f"{int(v)}")
    return shown


def write_table(frame: pd.DataFrame, csv_path: str | os.PathLike) -> None:
    """Write ``csv_path`` and its ``.md`` and ``.tex`` renderings beside it."""
    csv_path = Path(csv_path)
    out = frame.copy()
    out["x0"] = out["x0"].map({True: "true", False: "false"})
    out["adam"] = out["adam"].map({True: "true", False: "false"})
    write_text(csv_path, out.to_csv(index=False))
    first = frame.iloc[0]
    features = ", ".join(sorted(frame["features"].unique()))
    note = (f"\n\nEach value: mean over {first['replicates']} training replicate(s) x {first['seeds']} sampling "
            f"seed(s) x {first['samples_per_seed']} samples, [{first['confidence']:.0%} hierarchical bootstrap interval "
            f"over replicates, seeds and samples]. Accuracy (guide): the "
            f"guiding classifier calls the sample '{first['target']}'; accuracy (judge): an independent classifier, "
            f"never used for guidance, does; fooled: the guide does and the judge does not. FID and KID: "
            f"{first['n']} samples against {first['n']} training images of class '{first['target']}' per seed (mean over "
            f"seeds), on {features} features. cosine: consecutive-step cosine of the guidance direction, over all steps and "
            f"over the last quarter of them. informativeness: cosine between the applied guidance and the noise-aware (robust) "
            f"classifier's gradient at the same x_t, at the judge's steps (for the robust cells: a consistency check). "
            f"staleness: cosine between the applied direction and the step's own raw gradient (1 without a stabiliser); "
            f"spread: ||d||_1 / (sqrt(n) ||d||_2) of the applied direction (1: every pixel moved alike). "
            f"Compute: the method's UNet forwards + backwards and classifier passes (forward and backward) per sample.\n")
    write_text(csv_path.with_suffix(".md"), pretty(frame).to_markdown(index=False, disable_numparse=True) + note)
    write_text(csv_path.with_suffix(".tex"), pretty(frame).to_latex(index=False, escape=True))
