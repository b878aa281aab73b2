"""MobileNetV3-small classifiers: one training loop for the robust and non-robust ones.

The only difference between the two is what they see: the robust classifier is
trained on ``scheduler.add_noise(x0, noise, t)`` with t uniform over the DDPM's
steps, the non-robust one on clean images. Both are evaluated on both, which gives
the paper's clean and noisy validation accuracies.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torchvision.models import mobilenet_v3_small
from tqdm.auto import tqdm

from .atomic import atomic_path
from .checkpoint import load_torch
from .device import describe

log = logging.getLogger(__name__)

MODES = ("noisy", "clean")


@dataclass(frozen=True)
class ClassifierTrainConfig:
    mode: str = "clean"  # "noisy" trains the robust classifier
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    patience: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"classifier mode must be one of {MODES}, got {self.mode!r}")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def build_classifier(num_classes: int) -> torch.nn.Module:
    return mobilenet_v3_small(weights=None, num_classes=num_classes)


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
        model(x.to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on images in [-1, 1]."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i:i + batch_size].to(device))
        correct += (logits.argmax(1).cpu() == labels[i:i + batch_size]).sum().item()
    return correct / len(images)


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
    model = build_classifier(num_classes).to(device)
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
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
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
        elif epoch - best_epoch >= cfg.patience:
            log.info("early stop at epoch %d: best %s %.4f at epoch %d", epoch, monitor, best, best_epoch)
            break
    model.load_state_dict(best_state)
    model.eval()
    final = evaluate(model, val_images, val_labels, scheduler)
    report = {"mode": cfg.mode, "monitor": monitor, "best_epoch": best_epoch, "epochs_run": len(history),
              "parameters": sum(p.numel() for p in model.parameters()), **final,
              "config": asdict(cfg), "history": history, "device": describe(device)}
    return model, report


def save_classifier(path: str | os.PathLike, model: torch.nn.Module, classes: tuple[str, ...],
                    image_size: int, mode: str) -> None:
    with atomic_path(path) as tmp:
        torch.save({"kind": "classifier", "state_dict": model.state_dict(), "classes": list(classes),
                    "image_size": image_size, "mode": mode}, tmp)


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """Return (model in eval mode, metadata). Errors name the file."""
    state = load_torch(path, "classifier")
    model = build_classifier(len(state["classes"]))
    model.load_state_dict(state["state_dict"])
    meta = {k: state[k] for k in ("classes", "image_size", "mode")}
    return model.to(device).eval(), meta
