"""The unconditional DDPM: diffusers' UNet2DModel and DDPMScheduler, and their training loop.

Models and schedulers are diffusers' own; this module only builds them from the
experiment's settings and trains the UNet with the simplified epsilon loss. The
result is a ``DDPMPipeline`` directory, so ``DDPMPipeline.from_pretrained`` loads it.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from .atomic import atomic_dir, atomic_path, write_json
from .checkpoint import CheckpointError, load_torch
from .device import autocast, describe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UNetConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    # One flag per resolution level, shallowest first; the paper puts attention in the three deepest.
    attention: tuple[bool, ...] = (False, False, False)

    def __post_init__(self):
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError(
                f"attention has {len(self.attention)} flags but block_out_channels has "
                f"{len(self.block_out_channels)} levels; give one flag per level"
            )


@dataclass(frozen=True)
class DDPMTrainConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    num_train_timesteps: int = 1000
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    ema_decay: float = 0.995
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self):
        for name in ("num_train_timesteps", "steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def build_unet(cfg: UNetConfig, image_size: int) -> UNet2DModel:
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention))
    return UNet2DModel(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=down,
        up_block_types=up,
    )


def build_scheduler(num_train_timesteps: int) -> DDPMScheduler:
    """Linear betas, fixed small variance, epsilon prediction: the paper's DDPM."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="linear",
        variance_type="fixed_small",
        prediction_type="epsilon",
    )


# Precisions the UNet can sample in. float16 is the authors' (on a GPU); on a CPU without
# AMX it runs about 50x slower than float32, while bfloat16 runs about 2x faster (avx512_bf16).
UNET_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_pipeline(path: str | os.PathLike, device: torch.device | str = "cpu",
                  dtype: str = "float32") -> tuple[UNet2DModel, DDPMScheduler]:
    """Load a trained DDPM directory, its UNet in ``dtype``, naming the directory if it is not one."""
    path = Path(path)
    if dtype not in UNET_DTYPES:
        raise ValueError(f"unknown UNet dtype {dtype!r}; choose one of {', '.join(UNET_DTYPES)}")
    if not (path / "model_index.json").is_file():
        raise CheckpointError(f"{path} is not a DDPM pipeline directory (no model_index.json)")
    try:
        pipe = DDPMPipeline.from_pretrained(path, dtype=UNET_DTYPES[dtype])
    except Exception as exc:
        raise CheckpointError(f"DDPM pipeline in {path} could not be loaded: {exc}") from exc
    return pipe.unet.to(device).eval(), pipe.scheduler


def _step_generator(seed: int, step: int) -> torch.Generator:
    # One generator per optimisation step: a resumed run draws exactly the batches,
    # noise and timesteps that an uninterrupted run would have drawn.
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _training_batch(images: torch.Tensor, scheduler: DDPMScheduler, cfg: DDPMTrainConfig, step: int):
    gen = _step_generator(cfg.seed, step)
    idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=gen)
    x0 = images[idx]
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, cfg.num_train_timesteps, (cfg.batch_size,), generator=gen)
    return scheduler.add_noise(x0, noise, t), noise, t


def train_ddpm(
    images: torch.Tensor,
    out_dir: str | os.PathLike,
    cfg: DDPMTrainConfig,
    device: torch.device,
    work_dir: str | os.PathLike,
    stop_after: int | None = None,
) -> list[float]:
    """Train the UNet on ``images`` (N, 3, H, W in [-1, 1]) and save a DDPMPipeline to ``out_dir``.

    ``work_dir`` holds ``last.pt`` (model, EMA, optimiser, step) written every
    ``checkpoint_every`` steps; a run that finds it continues from there, so a kill
    loses at most one interval. ``stop_after`` ends the run early at that step after
    checkpointing (used to test resuming). Returns the loss of every step run here.
    """
    image_size = images.shape[-1]
    torch.manual_seed(cfg.seed)
    unet = build_unet(cfg.unet, image_size).to(device)
    scheduler = build_scheduler(cfg.num_train_timesteps)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, model_cls=UNet2DModel, model_config=unet.config)

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = work_dir / "last.pt"
    loss_log = work_dir / "loss.csv"
    # A checkpoint is only resumed for the very same settings and data.
    identity = {"config": asdict(cfg), "image_size": image_size, "data": _fingerprint(images)}
    start = 0
    state = load_torch(ckpt_path, "ddpm-train") if ckpt_path.exists() else None
    if state is not None and state.get("identity") == identity:
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        start = state["step"]
        log.info("resuming DDPM training from step %d (%s)", start, ckpt_path)
    else:
        if state is not None:
            log.warning("%s is for other settings or data; starting afresh", ckpt_path)
        loss_log.unlink(missing_ok=True)
    ema.to(device)

    n_params = sum(p.numel() for p in unet.parameters())
    log.info("UNet2DModel with %.2fM parameters on %s", n_params / 1e6, describe(device))
    losses: list[float] = []
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    unet.train()
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc="DDPM", file=sys.stderr,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    with open(loss_log, "a", newline="") as fh:
        writer = csv.writer(fh)
        for step in bar:
            x_t, noise, t = _training_batch(images, scheduler, cfg, step)
            x_t, noise, t = x_t.to(device), noise.to(device), t.to(device)
            with autocast(device):
                pred = unet(x_t, t).sample
            loss = F.mse_loss(pred.float(), noise)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"DDPM loss became {loss.item()} at step {step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.step(unet.parameters())
            losses.append(loss.item())
            writer.writerow([step, f"{loss.item():.6f}"])
            bar.set_postfix(loss=f"{loss.item():.4f}")
            done = step + 1
            if done % cfg.checkpoint_every == 0 or done == end:
                fh.flush()
                _save_checkpoint(ckpt_path, unet, optimizer, ema, done, identity)

    if end < cfg.steps:
        return losses
    # Sampling uses the EMA weights, as is standard for DDPMs.
    ema.copy_to(unet.parameters())
    with atomic_dir(out_dir) as tmp:
        DDPMPipeline(unet=unet.eval().to("cpu"), scheduler=scheduler).save_pretrained(tmp)
        write_json(Path(tmp) / "training.json", {
            "config": asdict(cfg), "image_size": image_size, "parameters": n_params,
            "final_loss_mean_last_100": sum(losses[-100:]) / max(1, len(losses[-100:])),
            "device": describe(device),
        })
    ckpt_path.unlink()  # the model is saved; a stale checkpoint must never be resumed
    return losses


def _fingerprint(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]


def _save_checkpoint(path, unet, optimizer, ema, step, identity):
    with atomic_path(path) as tmp:
        torch.save({"kind": "ddpm-train", "step": step, "identity": identity, "unet": unet.state_dict(),
                    "optimizer": optimizer.state_dict(), "ema": ema.state_dict()}, tmp)
