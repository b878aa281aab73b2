"""How good is the unconditional DDPM: its class mix and FID under the judge, over training.

Guidance results sit on top of the DDPM, so its own quality is measured apart from any
classifier that guides: unguided samples (s = 0, the sampling seeds of every cell) are
classified by the judge, which gives the class mix, and their judge features give an
FID against real images of all classes. The FID of two disjoint real sets of the same
size is the floor that sample size allows; quality is read as the ratio to it. Both FIDs
are averaged over several random draws of the real sets, so the number does not hang on
one draw of real images. Each class share comes with a Wilson score interval (the
samples are independent draws from the DDPM), so a goal such as 15-35% per class is read
against what the sample size can resolve.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from .classifier import predict
from .guidance import GuidanceSettings, per_sample_seeds, sample_seeds
from .metrics import image_features, uint8_images
from .settings import CONFIDENCE
from .stats import frechet_distance_features

log = logging.getLogger(__name__)


def class_counts(judge: torch.nn.Module, images: torch.Tensor, num_classes: int) -> np.ndarray:
    """How many of ``images`` ([-1, 1], NCHW) the judge puts in each class."""
    return np.bincount(predict(judge, images).numpy(), minlength=num_classes)


def share_interval(count: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a share count / total: never outside [0, 1], sensible at 0 and 1."""
    ci = binomtest(int(count), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def real_reference_sets(real: np.ndarray, size: int, draws: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``draws`` pairs of disjoint random index sets of ``size`` into ``real``, seeded."""
    if 2 * size > len(real):
        raise ValueError(f"two disjoint real sets of {size} need {2 * size} images; the data set has {len(real)}")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(draws):
        order = rng.permutation(len(real))
        pairs.append((order[:size], order[size:2 * size]))
    return pairs


@dataclass(frozen=True)
class RealReference:
    """Seeded draws of two disjoint real sets of one size, and their mean FID (the floor), computed once."""
    features: np.ndarray
    pairs: list[tuple[np.ndarray, np.ndarray]]
    fid_real_vs_real: float

    @classmethod
    def draw(cls, features: np.ndarray, size: int, draws: int = 5, seed: int = 0) -> "RealReference":
        pairs = real_reference_sets(features, size, draws, seed)
        floor = np.mean([frechet_distance_features(features[a], features[b]) for a, b in pairs])
        return cls(features, pairs, float(floor))


def unconditional_quality(fake_features: np.ndarray, reference: RealReference) -> dict[str, float]:
    """FID of the samples against the reference's real sets of their size, averaged, and its ratio to the floor."""
    size = len(reference.pairs[0][0])
    if len(fake_features) != size:
        raise ValueError(f"{len(fake_features)} samples against real sets of {size}: both sides must be the same size")
    fid = np.mean([frechet_distance_features(reference.features[a], fake_features) for a, _ in reference.pairs])
    return {"fid": float(fid), "fid_real_vs_real": reference.fid_real_vs_real,
            "fid_ratio": float(fid / reference.fid_real_vs_real)}


def unguided_samples(unet, scheduler, seeds: list[int], num_samples: int, batch_size: int,
                     steps: int | None, device, progress: bool = False) -> torch.Tensor:
    """The s = 0 samples of every cell: same per-sample seeds, so the same images as the unguided cell."""
    images, _ = sample_seeds(per_sample_seeds(seeds, num_samples), unet, scheduler, None, GuidanceSettings(),
                             batch_size, steps, device, progress=progress)
    return images


def quality_row(images: torch.Tensor, judge: torch.nn.Module, feature: torch.nn.Module, reference: RealReference,
                classes: list[str], confidence: float = CONFIDENCE) -> dict:
    """Class shares (share_<class>, with share_<class>_low/_high) and FID numbers of one set of unguided samples."""
    counts = class_counts(judge, images, len(classes))
    row = {"confidence": confidence}
    for name, count in zip(classes, counts):
        low, high = share_interval(count, len(images), confidence)
        row |= {f"share_{name}": float(count / len(images)), f"share_{name}_low": low, f"share_{name}_high": high}
    row |= unconditional_quality(image_features(uint8_images(images), feature), reference)
    return row


def training_checkpoints(ddpm) -> dict:
    """step -> snapshot file of every training snapshot, and the final step -> None (the final weights);
    a brought DDPM, which has no training, has its final weights only, at no step (NaN)."""
    from .ddpm import snapshot_steps
    from .pretrained import PRETRAINED_JSON

    if (Path(ddpm) / PRETRAINED_JSON).is_file():
        return {float("nan"): None}
    training = json.loads((Path(ddpm) / "training.json").read_text())
    return {**snapshot_steps(ddpm), training["config"]["steps"]: None}


def measure_ddpm(ddpm, judge_path, data_path, *, feature_classifier=None, seeds: list[int], num_samples: int,
                 batch_size: int, steps: int | None, unet_dtype: str, real_draws: int, confidence: float, device):
    """One row per training snapshot and the final weights: the judge's class mix and the FID ratio of the
    unguided samples (the cells' seeds) on the feature network's pooled features (the judge's if none)."""
    import pandas as pd

    from .classifier import load_classifier
    from .data import load_dataset
    from .ddpm import load_pipeline, load_snapshot
    from .metrics import feature_network

    unet, scheduler = load_pipeline(ddpm, device, unet_dtype)
    judge, meta = load_classifier(judge_path, device)
    data = load_dataset(data_path)
    classes = [str(c) for c in data["classes"]]
    if list(meta["classes"]) != classes:
        raise ValueError(f"judge {judge_path} knows classes {meta['classes']}, the data set {data_path} {classes}")
    # FID features on the CPU, as `evaluate` computes them; a copy of the judge, so it stays on device
    feature, feature_name = feature_network("features", classifier=load_classifier(feature_classifier or judge_path)[0])
    # the real sets and their real-vs-real FID are the same for every snapshot: drawn once
    reference = RealReference.draw(image_features(data["train_images"], feature), len(seeds) * num_samples, real_draws)
    final_weights = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    rows = []
    for step, snapshot in training_checkpoints(ddpm).items():
        if snapshot is None:
            unet.load_state_dict(final_weights)
        else:
            load_snapshot(unet, snapshot)
        images = unguided_samples(unet, scheduler, seeds, num_samples, batch_size, steps, device)
        row = {"step": step, "final": snapshot is None, "samples": len(images),
               "sampling_steps": steps or scheduler.config.num_train_timesteps, "features": feature_name}
        rows.append(row | quality_row(images, judge, feature, reference, classes, confidence))
        log.info("%s: FID %.1f (%.2fx real vs real), class shares %s", "final weights" if snapshot is None
                 else f"step {step}", rows[-1]["fid"], rows[-1]["fid_ratio"],
                 ", ".join(f"{c} {rows[-1][f'share_{c}']:.0%}" for c in classes))
    return pd.DataFrame(rows)
