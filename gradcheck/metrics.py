"""Sample metrics: accuracy under a classifier, and class-conditional FID through torchmetrics.

FID needs a feature network. Standard FID uses Inception-v3 weights, which must be on
disk here (nothing is downloaded at run time). Without them, the pooled features of a
SportBalls classifier that the pipeline trains itself are used instead. The choice is
explicit and recorded with every number: there is no silent fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from .checkpoint import CheckpointError

FEATURE_SOURCES = ("inception", "sportballs")


class PooledClassifierFeatures(torch.nn.Module):
    """The globally pooled last feature map of a MobileNetV3 classifier (576-d).

    Takes uint8 NCHW images, the same input as torchmetrics' Inception, so the two
    feature sources are interchangeable in :func:`frechet_distance`.
    """

    def __init__(self, classifier: torch.nn.Module):
        super().__init__()
        self.features, self.avgpool = classifier.features, classifier.avgpool
        self.num_features = classifier.classifier[0].in_features
        self.requires_grad_(False).eval()

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        x = images_u8.float() / 127.5 - 1.0
        return self.avgpool(self.features(x)).flatten(1)


def feature_network(source: str, *, inception_weights: str | os.PathLike | None = None,
                    classifier: torch.nn.Module | None = None) -> tuple[torch.nn.Module | int, str]:
    """Return (``feature`` argument for torchmetrics, a name recorded beside every FID)."""
    if source == "inception":
        if not inception_weights or not Path(inception_weights).is_file():
            raise CheckpointError(
                f"FID features 'inception' need Inception-v3 weights on disk (torch-fidelity format); "
                f"not found: {inception_weights!r}. Set metrics.inception_weights or use features 'sportballs'."
            )
        return 2048, "inception-v3-pool3-2048"
    if source == "sportballs":
        if classifier is None:
            raise ValueError("FID features 'sportballs' need the feature classifier")
        net = PooledClassifierFeatures(classifier)
        return net, f"sportballs-mobilenetv3-pool-{net.num_features}"
    raise ValueError(f"unknown FID feature source {source!r}; choose one of {FEATURE_SOURCES}")


def to_nchw_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """NHWC uint8 (as stored) -> NCHW uint8 tensor."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected NHWC uint8 RGB images, got {tuple(images.shape)} {images.dtype}")
    return images.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def frechet_distance(real: np.ndarray, fake: np.ndarray, feature: torch.nn.Module | int,
                     inception_weights: str | os.PathLike | None = None, batch_size: int = 64) -> float:
    """FID between two sets of NHWC uint8 images, through torchmetrics."""
    kwargs = {"feature_extractor_weights_path": str(inception_weights)} if isinstance(feature, int) else {}
    metric = FrechetInceptionDistance(feature=feature, normalize=False, **kwargs)
    for images, is_real in ((real, True), (fake, False)):
        tensor = to_nchw_uint8(images)
        for i in range(0, len(tensor), batch_size):
            metric.update(tensor[i:i + batch_size], real=is_real)
    return float(metric.compute())


def uint8_images(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW float -> NHWC uint8, rounding as diffusers' pipelines do."""
    x = ((x.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()
