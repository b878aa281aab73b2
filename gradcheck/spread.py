"""Where the replicates' spread comes from: each replicate's DDPM crossed with each replicate's guide.

One cell (the headline, by default) is sampled for every (DDPM d, guide g) pair of training
replicates, every DDPM from its own seeds, so the guides of one DDPM start from the same noise. The
judge's verdict on each sample (target or not) then splits the spread of the cells' accuracies
into a DDPM part, a guide part and their interaction, by the method of moments of the two-way
random-effects model with n samples per pair:

    y_dgk = mu + D_d + G_g + (DG)_dg + e_dgk,
    E[MS_D] = s2_e + n s2_DG + G n s2_D,  E[MS_G] = s2_e + n s2_DG + D n s2_G,
    E[MS_DG] = s2_e + n s2_DG,            E[MS_E] = s2_e.

The intervals resample DDPMs, guides and samples within a pair (a bootstrap over both factors);
with three levels of each they are wide, and say so. Torch-free: the verdicts come in as arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COMPONENTS = ("ddpm", "guide", "interaction", "samples")


def mean_squares(y: np.ndarray) -> dict[str, float]:
    """The two-way ANOVA's mean squares of ``y`` (DDPMs x guides x samples per pair)."""
    a, b, n = y.shape
    grand = y.mean()
    cell = y.mean(axis=2)
    rows, cols = cell.mean(axis=1), cell.mean(axis=0)
    interaction = cell - rows[:, None] - cols[None, :] + grand
    return {"ddpm": b * n * ((rows - grand) ** 2).sum() / (a - 1),
            "guide": a * n * ((cols - grand) ** 2).sum() / (b - 1),
            "interaction": n * (interaction ** 2).sum() / ((a - 1) * (b - 1)),
            "samples": ((y - cell[:, :, None]) ** 2).sum() / (a * b * (n - 1))}


def variance_components(y: np.ndarray) -> dict[str, float]:
    """Method-of-moments variance of each random effect (may come out below 0 by chance: kept as is)."""
    a, b, n = y.shape
    ms = mean_squares(y)
    return {"ddpm": (ms["ddpm"] - ms["interaction"]) / (b * n),
            "guide": (ms["guide"] - ms["interaction"]) / (a * n),
            "interaction": (ms["interaction"] - ms["samples"]) / n,
            "samples": ms["samples"]}


def between_pair_shares(components: dict[str, float]) -> dict[str, float]:
    """Each of DDPM, guide and interaction as a share of their sum, negatives read as 0."""
    parts = {k: max(components[k], 0.0) for k in ("ddpm", "guide", "interaction")}
    total = sum(parts.values())
    return {k: (v / total if total > 0 else float("nan")) for k, v in parts.items()}


def bootstrap_components(y: np.ndarray, n_boot: int, confidence: float, seed: int = 0) -> dict[str, tuple]:
    """Percentile intervals of each component and share: DDPMs, guides and samples resampled."""
    rng = np.random.default_rng(seed)
    a, b, n = y.shape
    draws = {k: [] for k in (*COMPONENTS, *(f"share_{k}" for k in ("ddpm", "guide", "interaction")))}
    for _ in range(n_boot):
        rows, cols = rng.integers(0, a, a), rng.integers(0, b, b)
        picked = y[np.ix_(rows, cols)]
        picked = np.take_along_axis(picked, rng.integers(0, n, picked.shape), axis=2)
        comps = variance_components(picked)
        for key, value in comps.items():
            draws[key].append(value)
        for key, value in between_pair_shares(comps).items():
            draws[f"share_{key}"].append(value)
    tail = (1 - confidence) / 2 * 100
    return {key: tuple(np.nanpercentile(values, [tail, 100 - tail])) for key, values in draws.items()}


def spread_table(y: np.ndarray, n_boot: int, confidence: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the judge's accuracy per DDPM x guide pair; each component with its share and interval)."""
    a, b, n = y.shape
    if a < 2 or b < 2 or n < 2:
        raise ValueError(f"the spread needs at least 2 DDPMs, 2 guides and 2 samples per pair, got {a} x {b} x {n}")
    pairs = pd.DataFrame([{"ddpm": d, "guide": g, "judge_accuracy": y[d, g].mean(), "n": n}
                          for d in range(a) for g in range(b)])
    comps = variance_components(y)
    shares = between_pair_shares(comps)
    ci = bootstrap_components(y, n_boot, confidence)
    rows = []
    for key in COMPONENTS:
        share_ci = ci.get(f"share_{key}", (np.nan, np.nan))
        rows.append({"component": key, "variance": comps[key], "variance_lo": ci[key][0], "variance_hi": ci[key][1],
                     "sd_points": 100 * np.sqrt(max(comps[key], 0.0)),
                     "share_between_pairs": shares.get(key, np.nan), "share_lo": share_ci[0], "share_hi": share_ci[1],
                     "ddpms": a, "guides": b, "samples_per_pair": n, "confidence": confidence, "n_boot": n_boot})
    return pairs, pd.DataFrame(rows)


def spread_figure(pairs: pd.DataFrame, components: pd.DataFrame, path, title: str) -> None:
    """Left: the judge's accuracy of every DDPM x guide pair; right: each component as a standard deviation
    in accuracy points, with its interval (a variance interval below 0 drawn from 0)."""
    from .plots import _save, plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1, 1.1]},
                                      layout="constrained")
    grid = pairs.pivot(index="ddpm", columns="guide", values="judge_accuracy").sort_index().sort_index(axis=1)
    image = left.imshow(100 * grid.to_numpy(), vmin=0, vmax=100, cmap="viridis")
    for (d, g), value in np.ndenumerate(100 * grid.to_numpy()):
        left.text(g, d, f"{value:.0f}%", ha="center", va="center", color="white" if value < 60 else "black")
    left.set_xticks(range(grid.shape[1]), [f"guide {g}" for g in grid.columns])
    left.set_yticks(range(grid.shape[0]), [f"DDPM {d}" for d in grid.index])
    left.set_title(f"judge accuracy per pair ({int(pairs['n'].iloc[0])} samples each)")
    fig.colorbar(image, ax=left, label="judge accuracy (%)", shrink=0.85)
    sd = 100 * np.sqrt(components.variance.clip(lower=0).to_numpy())
    low = 100 * np.sqrt(components.variance_lo.clip(lower=0).to_numpy())
    high = 100 * np.sqrt(components.variance_hi.clip(lower=0).to_numpy())
    right.bar(components.component, sd, yerr=[sd - low, high - sd], capsize=6,
              color=["tab:blue", "tab:orange", "tab:grey", "lightgrey"])
    right.set_ylabel("standard deviation (accuracy points)")
    right.set_title(f"where the spread comes from ({components.confidence.iloc[0]:.0%} bootstrap intervals)")
    fig.suptitle(title)
    _save(fig, path)
