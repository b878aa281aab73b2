"""Sample metrics: class-conditional FID and KID through torchmetrics, on named features.

FID needs a feature network. Standard FID uses Inception-v3 weights, which must be on
disk here (nothing is downloaded at run time). Without them, the pooled features of a
classifier that the pipeline trains itself for this alone (never the judge, which scores, nor a
guide) are used instead. The choice is
explicit and recorded with every number: there is no silent fallback.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError
from .classifier import pooled_feature_extractor
from .settings import FEATURE_SOURCES  # features: a classifier's pooled features, never the judge's



class PooledClassifierFeatures(torch.nn.Module):
    """The globally pooled last feature map of a classifier (576-d for MobileNetV3-small,
    1024-d for ShuffleNetV2, 512-d for ResNet-18).

    Takes uint8 NCHW images, the same input as torchmetrics' Inception, so the two
    feature sources are interchangeable in :func:`frechet_distance`.
    """

    def __init__(self, classifier: torch.nn.Module):
        super().__init__()
        self.body, self.num_features = pooled_feature_extractor(classifier)
        # a TorchScript module (a brought judge) keeps its class name as original_name
        self.architecture = getattr(classifier, "original_name", type(classifier).__name__).lower()
        self.requires_grad_(False).eval()

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self.body(images_u8.float() / 127.5 - 1.0)


def feature_network(source: str, *, inception_weights: str | os.PathLike | None = None,
                    classifier: torch.nn.Module | None = None) -> tuple[torch.nn.Module, str]:
    """Return (feature module for torchmetrics' FID and KID, a name recorded beside every number)."""
    if source == "inception":
        if not inception_weights or not Path(inception_weights).is_file():
            raise CheckpointError(
                f"FID features 'inception' need Inception-v3 weights on disk (torch-fidelity format); "
                f"not found: {inception_weights!r}. Set metrics.inception_weights or use features 'features'."
            )
        from torchmetrics.image.fid import NoTrainInceptionV3

        # Built here, not by the metrics, because torchmetrics' KID cannot take a weights path.
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=str(inception_weights))
        net.num_features = 2048
        return net, "inception-v3-pool3-2048"
    if source == "features":
        if classifier is None:
            raise ValueError("FID features 'features' need the feature classifier")
        net = PooledClassifierFeatures(classifier)
        return net, f"features-{net.architecture}-pool-{net.num_features}"
    raise ValueError(f"unknown FID feature source {source!r}; choose one of {FEATURE_SOURCES}")


def to_nchw_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """NHWC uint8 (as stored) -> NCHW uint8 tensor."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected NHWC uint8 RGB images, got {tuple(images.shape)} {images.dtype}")
    return images.permute(0, 3, 1, 2).contiguous()


def _fill(metric, real: np.ndarray, fake: np.ndarray, batch_size: int):
    for images, is_real in ((real, True), (fake, False)):
        tensor = to_nchw_uint8(images)
        for i in range(0, len(tensor), batch_size):
            metric.update(tensor[i:i + batch_size], real=is_real)
    return metric


@torch.no_grad()
def frechet_distance(real: np.ndarray, fake: np.ndarray, feature: torch.nn.Module, batch_size: int = 64) -> float:
    """FID between two sets of NHWC uint8 images, through torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance  # here: torchmetrics and SciPy take 0.8 s to import,
    # which every sampling job (it needs only uint8_images) would pay
    return float(_fill(FrechetInceptionDistance(feature=feature, normalize=False), real, fake, batch_size).compute())


@torch.no_grad()
def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, feature: torch.nn.Module,
                              batch_size: int = 64) -> float:
    """KID (unbiased MMD^2, cubic polynomial kernel) through torchmetrics.

    One subset of min(len(real), len(fake)) images: with equal set sizes that subset is
    every image, so the value is the full unbiased estimate and needs no random draw.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    subset = min(len(real), len(fake))
    if subset < 2:
        raise ValueError(f"KID needs at least 2 images per side, got {len(real)} real and {len(fake)} fake")
    with warnings.catch_warnings():  # "saves all extracted features": a few hundred here
        warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance`", UserWarning)
        metric = KernelInceptionDistance(feature=feature, subsets=1, subset_size=subset, normalize=False)
    _fill(metric, real, fake, batch_size)
    # compute() draws its subset with torch.randperm: a fixed seed keeps the order of the
    # float sums, and so the last digits, the same from run to run.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mean, _ = metric.compute()
    return float(mean)


@torch.no_grad()
def image_features(images: np.ndarray, feature: torch.nn.Module, batch_size: int = 64) -> np.ndarray:
    """The float64 features FID and KID compute from these NHWC uint8 images."""
    tensor = to_nchw_uint8(images)
    return torch.cat([feature(tensor[i:i + batch_size]).double() for i in range(0, len(tensor), batch_size)]).numpy()


def uint8_images(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW float -> NHWC uint8, rounding as diffusers' pipelines do."""
    x = ((x.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()
