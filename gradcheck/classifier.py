"""Image classifiers: one training loop for the robust, the non-robust and the judge classifier.

The guiding classifiers are torchvision MobileNetV3-small, as in the paper, and differ
only in what they see: the robust one is trained on ``scheduler.add_noise(x0, noise, t)``
with t uniform over the DDPM's steps, the non-robust one on clean images. The judge,
which scores samples but never guides, can use another architecture (ShuffleNetV2), so
that an adversarial direction of the guiding network is less likely to fool it too.
Every classifier is evaluated on clean and on noisy images.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import sys
from dataclasses import asdict

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torchvision.models import mobilenet_v3_small, resnet18, shufflenet_v2_x0_5
from tqdm.auto import tqdm

from .atomic import atomic_path
from .checkpoint import CheckpointError, load_torch
from .device import describe
from .settings import ARCHITECTURES, ClassifierTrainConfig
from .speed import input_layout, to_classifier_layout

if TYPE_CHECKING:  # an annotation only: importing diffusers takes 1.7 s, which an evaluation job never needs
    from diffusers import DDPMScheduler

log = logging.getLogger(__name__)

# resnet18: the FID feature network's default, a third family beside the guides' and the judge's
BUILDERS = {"mobilenet_v3_small": mobilenet_v3_small, "shufflenet_v2_x0_5": shufflenet_v2_x0_5, "resnet18": resnet18}
assert tuple(BUILDERS) == ARCHITECTURES  # settings.ARCHITECTURES names what can be built
# The "architecture" of a brought TorchScript classifier (gradcheck.pretrained): the file holds
# the TorchScript archive's bytes, as a uint8 tensor under "torchscript", instead of a state dict.
TORCHSCRIPT = "torchscript"


def build_classifier(num_classes: int, architecture: str = "mobilenet_v3_small") -> torch.nn.Module:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown classifier architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    return BUILDERS[architecture](weights=None, num_classes=num_classes)


def pooled_feature_extractor(model: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """(module mapping images in [-1, 1] to the globally pooled last feature map, its width).

    Works on the torchvision modules and on TorchScript versions of them (scripted or
    traced, also after ``torch.jit.load``, whose containers cannot be indexed: the width
    is then measured with one forward pass).
    """
    pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(1))
    if hasattr(model, "features"):  # MobileNetV3
        body = torch.nn.Sequential(model.features, pool)
        return body, _feature_width(body, lambda: getattr(model.classifier, "0").in_features)
    if hasattr(model, "conv5"):     # ShuffleNetV2
        body = torch.nn.Sequential(model.conv1, model.maxpool, model.stage2, model.stage3, model.stage4,
                                   model.conv5, pool)
        return body, _feature_width(body, lambda: model.fc.in_features)
    if hasattr(model, "layer4"):    # ResNet
        body = torch.nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
                                   model.layer3, model.layer4, pool)
        return body, _feature_width(body, lambda: model.fc.in_features)
    name = getattr(model, "original_name", type(model).__name__)
    raise TypeError(f"no pooled features known for {name}")


def _feature_width(body: torch.nn.Module, known) -> int:
    try:
        return int(known())
    except Exception:  # a loaded TorchScript module: ask the features themselves
        pass
    modes = [(m, m.training) for m in body.modules()]  # the model's own modules: leave them as they were
    try:
        with torch.no_grad():
            return int(body.eval()(torch.zeros(2, 3, 32, 32)).shape[1])
    finally:
        for module, training in modes:
            module.training = training


def noisy_copy(x0: torch.Tensor, scheduler: DDPMScheduler, generator: torch.Generator) -> torch.Tensor:
    """x_t for t uniform over the scheduler's training steps: the robust classifier's input."""
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    return scheduler.add_noise(x0, noise, t)


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, images: torch.Tensor, cfg: "ClassifierTrainConfig",
                          scheduler: DDPMScheduler, batches: int = 30) -> None:
    """Re-estimate BatchNorm statistics on the training distribution ("precise BN").

    torchvision's MobileNetV3 uses BN momentum 0.01, so its running statistics trail
    weights that converge within an epoch by hundreds of steps; evaluated as is, the
    model can collapse to one class. A pass with cumulative averaging fixes that.
    """
    device = next(model.parameters()).device
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the recalibration batches
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    perm = torch.randperm(len(images), generator=gen)[: batches * cfg.batch_size]
    model.train()
    for i in range(0, len(perm), cfg.batch_size):
        x = images[perm[i:i + cfg.batch_size]]
        if cfg.mode == "noisy":
            x = noisy_copy(x, scheduler, gen)
        model(x.to(device, memory_format=input_layout(model)))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Top-1 class of each image in [-1, 1], with ``model`` in eval mode."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device  # a brought model may have no parameters
    layout = input_layout(model)
    return torch.cat([model(images[i:i + batch_size].to(device, memory_format=layout)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on images in [-1, 1]."""
    return (predict(model, images, batch_size) == labels).float().mean().item()


def evaluate(model, val_images, val_labels, scheduler, seed: int = 12345) -> dict[str, float]:
    """Clean and noisy validation accuracy; the noisy copy is fixed by ``seed``."""
    noisy = noisy_copy(val_images, scheduler, torch.Generator().manual_seed(seed))
    return {"clean_accuracy": accuracy(model, val_images, val_labels),
            "noisy_accuracy": accuracy(model, noisy, val_labels)}


def train_classifier(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    scheduler: DDPMScheduler,
    cfg: ClassifierTrainConfig,
    num_classes: int,
    device: torch.device,
) -> tuple[torch.nn.Module, dict]:
    """Train with early stopping on the validation accuracy of the classifier's own input kind."""
    torch.manual_seed(cfg.seed)
    # channels-last on the CPU: a MobileNetV3 training step in a third of its time (speed.py)
    model = to_classifier_layout(build_classifier(num_classes, cfg.architecture).to(device), device)
    layout = input_layout(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    gen = torch.Generator().manual_seed(cfg.seed)
    monitor = "noisy_accuracy" if cfg.mode == "noisy" else "clean_accuracy"
    best, best_state, best_epoch, history = -1.0, None, -1, []
    bar = tqdm(range(cfg.epochs), desc=f"classifier ({cfg.mode})", file=sys.stderr)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(train_images), generator=gen)
        total = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            x, y = train_images[idx], train_labels[idx]
            if cfg.mode == "noisy":
                x = noisy_copy(x, scheduler, gen)
            loss = F.cross_entropy(model(x.to(device, memory_format=layout)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        sched.step()
        recalibrate_batchnorm(model, train_images, cfg, scheduler)
        metrics = evaluate(model, val_images, val_labels, scheduler)
        history.append({"epoch": epoch, "loss": total / len(perm), **metrics})
        bar.set_postfix(loss=f"{total / len(perm):.3f}", val=f"{metrics[monitor]:.3f}")
        if metrics[monitor] > best:
            best, best_epoch, best_state = metrics[monitor], epoch, copy.deepcopy(model.state_dict())
        if best == 1.0:  # nothing left to improve on: later epochs could only tie, and a tie keeps this state
            log.info("converged at epoch %d: %s 1.0", epoch, monitor)
            break
        if epoch - best_epoch >= cfg.patience:
            log.info("early stop at epoch %d: best %s %.4f at epoch %d", epoch, monitor, best, best_epoch)
            break
    model.load_state_dict(best_state)
    model.eval()
    final = evaluate(model, val_images, val_labels, scheduler)
    model.to(memory_format=torch.contiguous_format)  # saved and returned in the usual layout
    report = {"mode": cfg.mode, "architecture": cfg.architecture, "monitor": monitor, "best_epoch": best_epoch, "epochs_run": len(history),
              "parameters": sum(p.numel() for p in model.parameters()), **final,
              "config": asdict(cfg), "history": history, "device": describe(device)}
    return model, report


def save_classifier(path: str | os.PathLike, model: torch.nn.Module, classes: tuple[str, ...],
                    image_size: int, mode: str, architecture: str = "mobilenet_v3_small") -> None:
    with atomic_path(path) as tmp:
        torch.save({"kind": "classifier", "state_dict": model.state_dict(), "classes": list(classes),
                    "image_size": image_size, "mode": mode, "architecture": architecture}, tmp)


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """Return (model in eval mode, metadata). Errors name the file.

    Loads the files :func:`save_classifier` writes and the brought TorchScript ones
    (architecture :data:`TORCHSCRIPT`, written by ``gradcheck.pretrained.bring_classifier``).
    """
    state = load_torch(path, "classifier")
    architecture = state.get("architecture", "mobilenet_v3_small")
    try:
        if architecture == TORCHSCRIPT:
            model = load_torchscript(torchscript_bytes(state[TORCHSCRIPT]), device)
        else:
            model = build_classifier(len(state["classes"]), architecture)
            model.load_state_dict(state["state_dict"])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"classifier {path} does not load as a {architecture}: {exc}") from exc
    meta = {"classes": state["classes"], "image_size": state["image_size"], "mode": state.get("mode"),
            "architecture": architecture}
    if "origin" in state:  # a brought classifier: where it came from
        meta["origin"] = state["origin"]
    return model.to(device).eval(), meta


class TorchScriptClassifier(torch.nn.Module):
    """A brought TorchScript classifier as an ordinary module.

    ScriptModules refuse some of nn.Module's methods (``requires_grad_``, which sampling
    calls); this wrapper has them all and forwards any other attribute to the script, so
    that :func:`pooled_feature_extractor` finds a scripted torchvision model's parts.
    """

    def __init__(self, script: torch.jit.ScriptModule):
        super().__init__()
        self.script = script
        self.original_name = getattr(script, "original_name", type(script).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "script":
                raise
            return getattr(super().__getattr__("script"), name)


def load_torchscript(archive: bytes, device: torch.device | str = "cpu") -> TorchScriptClassifier:
    """A TorchScript archive's module (``torch.jit.load``), wrapped, in eval mode."""
    return TorchScriptClassifier(torch.jit.load(io.BytesIO(archive), map_location=device)).eval()


def torchscript_bytes(stored) -> bytes:
    """The TorchScript archive kept in a classifier file: a uint8 tensor (or bytes)."""
    if isinstance(stored, torch.Tensor):
        return stored.cpu().contiguous().numpy().tobytes()
    return bytes(stored)
