"""One cell's metrics over every training replicate: guide and judge accuracy, fooled rate, FID, KID,
the consecutive-step cosine and the informativeness of the guidance, each with a hierarchical
bootstrap interval (replicates, then sampling seeds, then samples), the compute per sample, and the
per-sample outcomes that paired verdicts compare.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .settings import CONFIDENCE, N_BOOT
from .stats import (frechet_distance_features, hierarchical_bootstrap, kernel_inception_distance_features,
                    mean_statistic, nanmean_statistic)

# The late window of the stability claim: the paper reads figure 2 as x0-hat helping "especially
# towards the end", so the per-sample mean cosine is also taken over the last quarter of the steps.
LATE_FRACTION = 0.25


def per_sample_cosine(cosine: np.ndarray, late_fraction: float = LATE_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(steps, samples) consecutive-step cosines -> per-sample means over all steps and over the last
    ``late_fraction`` of them (steps run from t = T to 0, so the last rows are the end of sampling); NaN unguided."""
    late = max(1, int(round(len(cosine) * late_fraction)))
    with warnings.catch_warnings():  # an unguided cell's cosines are all NaN: its mean is NaN, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(cosine, axis=0), np.nanmean(cosine[-late:], axis=0)


def per_sample_mean(trace: np.ndarray) -> np.ndarray:
    """(steps, samples) -> each sample's mean over the steps where it was measured; NaN where none was."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(trace, axis=0)


def groups_of(seed_index: np.ndarray, replicate: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(replicate, seed, sample indices) of every group, replicate-major: the FID's real images follow this order."""
    return [(int(r), int(s), np.flatnonzero((replicate == r) & (seed_index == s)))
            for r in np.unique(replicate) for s in np.unique(seed_index[replicate == r])]


def cell_metrics(*, guide_says: np.ndarray, judge_says: np.ndarray, cosine: np.ndarray, seed_index: np.ndarray,
                 replicate: np.ndarray, features: list[tuple[np.ndarray, np.ndarray]], fid: list[float],
                 kid: list[float], n_boot: int, confidence: float, bootstrap_seed: int = 0,
                 informativeness: np.ndarray | None = None, staleness: np.ndarray | None = None,
                 spread: np.ndarray | None = None) -> dict:
    """Every metric with its interval; ``features``, ``fid`` and ``kid`` per group of :func:`groups_of`.
    ``informativeness`` (steps, samples): cos(applied direction, the reference's gradient), NaN where
    not measured; each sample's mean over its measured steps is the sample's value. ``staleness`` and
    ``spread`` (steps, samples), the applied direction against the step's raw gradient and over the pixels,
    are read the same way (NaN: a samples file from before they were recorded).

    Point estimates of FID and KID are torchmetrics' (``fid``, ``kid``: means over groups, which weigh
    replicates alike since each has as many seeds); the bootstrap resamples the feature-space formulas.
    """
    groups = groups_of(seed_index, replicate)
    replicate_of = [r for r, _, _ in groups]
    all_steps, late = per_sample_cosine(cosine)
    unmeasured = np.full(len(guide_says), np.nan)
    informative, stale, spread_ = (per_sample_mean(trace) if trace is not None else unmeasured
                                   for trace in (informativeness, staleness, spread))

    def interval(values, statistic, name, estimate=None, correct_bias=False):
        ci = hierarchical_bootstrap(values, statistic, n_boot=n_boot, confidence=confidence, seed=bootstrap_seed,
                                    correct_bias=correct_bias, replicate_of=replicate_of)
        return {name: ci.estimate if estimate is None else estimate, f"{name}_low": ci.low, f"{name}_high": ci.high}

    def per_group(x):
        return [(x[idx],) for _, _, idx in groups]

    fooled = guide_says & ~judge_says
    row = {}
    row |= interval(per_group(guide_says), mean_statistic, "accuracy")
    row |= interval(per_group(judge_says), mean_statistic, "judge_accuracy")
    row |= interval(per_group(fooled), mean_statistic, "fooled")
    row |= interval(features, frechet_distance_features, "fid", float(np.mean(fid)), correct_bias=True)
    row |= interval(features, kernel_inception_distance_features, "kid", float(np.mean(kid)), correct_bias=True)
    # a sample whose guidance or reference gradient was zero at every watched step has no informativeness
    for name, values, statistic in (("cosine_mean", all_steps, mean_statistic), ("cosine_late", late, mean_statistic),
                                    ("informativeness", informative, nanmean_statistic),
                                    ("staleness", stale, nanmean_statistic), ("spread", spread_, nanmean_statistic)):
        if np.isnan(values).all():
            row |= {name: None, f"{name}_low": None, f"{name}_high": None}
        else:
            row |= interval(per_group(values), statistic, name)
    row["per_replicate"] = [
        {"replicate": int(r), "accuracy": float(guide_says[replicate == r].mean()),
         "judge_accuracy": float(judge_says[replicate == r].mean()), "fooled": float(fooled[replicate == r].mean()),
         "fid": float(np.mean([f for (gr, _, _), f in zip(groups, fid) if gr == r])),
         "cosine_mean": _mean_or_none(all_steps[replicate == r])}
        for r in np.unique(replicate)]
    # per sample, so that two cells sampled from the same seeds can be compared pairwise
    row["per_sample"] = {"replicate": replicate.astype(int).tolist(), "seed_index": seed_index.astype(int).tolist(),
                         "guide": guide_says.astype(int).tolist(), "judge": judge_says.astype(int).tolist(),
                         "cosine": _list(all_steps), "cosine_late": _list(late),
                         "informativeness": _list(informative), "staleness": _list(stale), "spread": _list(spread_)}
    return row


def _mean_or_none(x: np.ndarray) -> float | None:
    return None if np.isnan(x).all() else float(np.mean(x))


def _list(x: np.ndarray) -> list:
    """JSON has no NaN: an unguided sample's cosine is null."""
    return [None if np.isnan(v) else float(v) for v in x]


def real_images_of(data: dict, target_name: str, groups: int, n: int, data_path) -> np.ndarray:
    """The data set's training images of the target class, by name: refused if fewer than n for each of
    ``groups`` (every seed of every replicate is compared with its own real images)."""
    classes = [str(c) for c in data["classes"]]  # the data set's own labels, by the target's name
    if target_name not in classes:
        raise ValueError(f"{data_path} has no class {target_name!r}; its classes: {', '.join(classes)}")
    real = data["train_images"][data["train_labels"] == classes.index(target_name)]
    if len(real) < n * groups:
        raise ValueError(f"{data_path} has {len(real)} training images of class {target_name!r}; "
                         f"{groups} seeds (of every replicate) x {n} need {n * groups}")
    return real


def evaluate_cell(samples_paths: list, guides: list, judge, data_path, *, features: str, label: str | None = None,
                  n: int | None = None, feature_classifier=None, inception_weights=None, n_boot: int = N_BOOT,
                  confidence: float = CONFIDENCE, bootstrap_seed: int = 0) -> dict:
    """The row of one cell: every replicate's samples (``samples_paths`` in replicate order), each scored
    by its own replicate's guide (``guides``, or one for all) and by the one judge, FID and KID per group."""
    from .classifier import load_classifier, predict
    from .data import images_to_tensor, load_dataset
    from .metrics import feature_network, frechet_distance, image_features, kernel_inception_distance
    from .samples import COMPUTE, load_replicates

    if len(guides) not in (1, len(samples_paths)):
        raise ValueError(f"--classifier takes one guide per --samples file (its replicate's), "
                         f"got {len(guides)} for {len(samples_paths)}")
    guides = guides * len(samples_paths) if len(guides) == 1 else guides
    samples = load_replicates(samples_paths)
    record, settings = samples["record"], samples["record"]["settings"]
    target, fake = settings["target"], samples["images"]
    groups = groups_of(samples["seed_index"], samples["replicate"])
    smallest = min(len(idx) for _, _, idx in groups)
    n = n or smallest
    if n > smallest:
        raise ValueError(f"--n {n} exceeds the {smallest} samples per seed in {samples_paths}")
    real = real_images_of(load_dataset(data_path), record["target_name"], len(groups), n, data_path)

    # Per sample: does its replicate's guide, and does the independent judge, see the target?
    x = images_to_tensor(fake)
    guide_says = np.zeros(len(fake), bool)
    for r, path in enumerate(guides):
        rows = samples["replicate"] == r
        guide_says[rows] = (predict(load_classifier(path)[0], x[rows]) == target).numpy()
    judge_says = (predict(load_classifier(judge)[0], x) == target).numpy()

    feature_clf = load_classifier(feature_classifier)[0] if feature_classifier else None
    feature, feature_name = feature_network(features, inception_weights=inception_weights, classifier=feature_clf)
    # Group g (a seed of a replicate) is compared with its own n real images: groups are independent.
    pairs = [(real[g * n:(g + 1) * n], fake[idx[:n]]) for g, (_, _, idx) in enumerate(groups)]
    row = {"classifier": label or os.path.splitext(os.path.basename(str(guides[0])))[0], "x0": settings["x0_hat"],
           "stabiliser": settings["stabiliser"], "adam": settings["adam"], "scale": settings["scale"],
           "method": settings.get("method", "paper"), "steps": record["num_inference_steps"],
           "target": record["target_name"], "replicates": len(samples_paths),
           "seeds": len(groups) // len(samples_paths),  # sampling seeds per replicate
           "samples_per_seed": smallest, "n": n, "features": feature_name, "confidence": confidence,
           "n_boot": n_boot, "samples": " ".join(map(str, samples_paths)),
           # what one sample cost: the method's passes (the judge's and the reference's are the instruments')
           **{name: (int(counts.sum()) if (counts := (samples["compute"] or {}).get(name)) is not None else None)
              for name in COMPUTE}}
    return row | cell_metrics(
        guide_says=guide_says, judge_says=judge_says, cosine=samples["cosine"], seed_index=samples["seed_index"],
        replicate=samples["replicate"], features=[(image_features(r, feature), image_features(f, feature)) for r, f in pairs],
        fid=[frechet_distance(r, f, feature) for r, f in pairs], kid=[kernel_inception_distance(r, f, feature) for r, f in pairs],
        n_boot=n_boot, confidence=confidence, bootstrap_seed=bootstrap_seed,
        informativeness=samples["informativeness"], staleness=samples["staleness"], spread=samples["spread"])
