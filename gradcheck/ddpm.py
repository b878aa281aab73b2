"""The unconditional DDPM: diffusers' UNet2DModel and DDPMScheduler, and their training loop.

Models and schedulers are diffusers' own; this module only builds them from the
experiment's settings and trains the UNet with the simplified epsilon loss. The
result is a ``DDPMPipeline`` directory, so ``DDPMPipeline.from_pretrained`` loads it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import math
import os
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import safetensors.torch
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

from .atomic import atomic_dir, atomic_path, write_json
from .checkpoint import CheckpointError, load_torch
from .data_parallel import run_ranks, sum_across_ranks
from .device import describe
from .settings import UNET_DTYPES, DDPMTrainConfig, UNetConfig, linear_beta_range
from .speed import attention_kernel, resolve_precision

log = logging.getLogger(__name__)
SNAPSHOTS = "snapshots"  # sub-directory of the pipeline directory: sampling weights during training


def build_unet(cfg: UNetConfig, image_size: int) -> UNet2DModel:
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in cfg.attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.attention))
    return UNet2DModel(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_num_groups,
        add_attention=cfg.mid_attention,
        down_block_types=down,
        up_block_types=up,
    )


def build_scheduler(num_train_timesteps: int, scale_betas: bool = False) -> DDPMScheduler:
    """Linear betas, fixed small variance, epsilon prediction: the paper's DDPM.

    The DDPM paper's betas run from 1e-4 to 0.02 whatever T is; with T = 400 (the authors')
    x_T then keeps sqrt(alpha_bar_T) = 0.13 of the image, while sampling starts from pure
    noise. ``scale_betas`` multiplies both ends by 1000 / T (Nichol & Dhariwal 2021), so any T
    spans the noise levels of T = 1000 (alpha_bar_T about 4e-5).
    """
    beta_start, beta_end = linear_beta_range(num_train_timesteps, scale_betas)
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="linear",
        beta_start=beta_start,
        beta_end=beta_end,
        variance_type="fixed_small",
        prediction_type="epsilon",
    )


# Precisions the UNet can sample in. float16 is the authors' (on a GPU); on a CPU without
# AMX it runs about 50x slower than float32, while bfloat16 runs about 2x faster (avx512_bf16).
# "auto" resolves to one of them on the device (gradcheck.speed.resolve_precision).
TORCH_DTYPES = {name: getattr(torch, name) for name in UNET_DTYPES if name != "auto"}


def load_pipeline(path: str | os.PathLike, device: torch.device | str = "cpu",
                  dtype: str = "float32") -> tuple[UNet2DModel, DDPMScheduler]:
    """Load a trained DDPM directory, its UNet in ``dtype``, naming the directory if it is not one."""
    path = Path(path)
    if dtype not in UNET_DTYPES:
        raise ValueError(f"unknown UNet dtype {dtype!r}; choose one of {', '.join(UNET_DTYPES)}")
    dtype = resolve_precision(dtype, device)
    if not (path / "model_index.json").is_file():
        raise CheckpointError(f"{path} is not a DDPM pipeline directory (no model_index.json)")
    try:
        # low_cpu_mem_usage=False: a UNet of a few MB gains nothing from accelerate's low-memory loading,
        # and saying so spares every job diffusers' advice to install it
        pipe = DDPMPipeline.from_pretrained(path, dtype=TORCH_DTYPES[dtype], low_cpu_mem_usage=False)
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
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, device))  # what ran: the checkpoint and record say
    if cfg.processes > 1 and device.type != "cpu":
        raise ValueError(f"ddpm.processes ({cfg.processes}) shares CPU cores between processes; on {device} set it to 1")
    return run_ranks(cfg.processes, _train, images, out_dir, cfg, device, work_dir, stop_after)


def _train(rank, images, out_dir, cfg, device, work_dir, stop_after) -> list[float]:
    """train_ddpm in one rank: every rank steps alike on its share of each batch; rank 0 alone writes."""
    main = rank == 0
    image_size = images.shape[-1]
    torch.manual_seed(cfg.seed)
    unet = build_unet(cfg.unet, image_size).to(device)
    scheduler = build_scheduler(cfg.num_train_timesteps, cfg.scale_betas)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr)
    # diffusers' "constant" ignores warm-up steps; "constant_with_warmup" is the constant with them
    schedule = "constant_with_warmup" if cfg.lr_schedule == "constant" and cfg.warmup_steps else cfg.lr_schedule
    lr_schedule = get_scheduler(schedule, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
    ema = (EMAModel(unet.parameters(), decay=cfg.ema_decay, model_cls=UNet2DModel, model_config=unet.config)
           if cfg.ema_decay > 0 else None)

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = work_dir / "last.pt"
    loss_log = work_dir / "loss.csv"
    snapshot_dir = work_dir / SNAPSHOTS
    # A checkpoint is only resumed for the very same settings and data.
    identity = {"config": asdict(cfg), "image_size": image_size, "data": _fingerprint(images)}
    start = _resume(ckpt_path, identity, unet, optimizer, lr_schedule, ema, loss_log, snapshot_dir, main)
    if ema is not None:
        ema.to(device)

    n_params = sum(p.numel() for p in unet.parameters())
    if main:
        log.info("UNet2DModel with %.2fM parameters on %s, %s%s", n_params / 1e6, describe(device), cfg.precision,
                 f", {cfg.processes} data-parallel processes" if cfg.processes > 1 else "")
    losses: list[float] = []
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    unet.train()
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc="DDPM", file=sys.stderr, disable=not main,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    with open(loss_log, "a", newline="") if main else contextlib.nullcontext() as fh:
        writer = csv.writer(fh) if main else None
        for step in bar:
            loss = _training_step(unet, optimizer, lr_schedule, ema, scheduler, images, cfg, step, device, rank)
            losses.append(loss)
            if not main:
                continue
            writer.writerow([step, f"{loss:.6f}"])
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            done = step + 1
            if cfg.snapshot_every and done % cfg.snapshot_every == 0 and done < cfg.steps:
                with sampling_weights(unet, ema):  # written before the checkpoint: a resume never skips one
                    _save_snapshot(snapshot_dir, unet, done)
            if done % cfg.checkpoint_every == 0 or done == end:
                fh.flush()
                _save_checkpoint(ckpt_path, unet, optimizer, lr_schedule, ema, done, identity)

    if end < cfg.steps or not main:
        return losses
    record = {"config": asdict(cfg), "image_size": image_size, "parameters": n_params,
              "final_loss_mean_last_100": sum(losses[-100:]) / max(1, len(losses[-100:])), "device": describe(device)}
    _save_trained(out_dir, unet, ema, scheduler, snapshot_dir, record)
    ckpt_path.unlink()  # the model is saved; a stale checkpoint must never be resumed
    shutil.rmtree(snapshot_dir, ignore_errors=True)
    return losses


def _save_trained(out_dir, unet, ema, scheduler, snapshot_dir, record):
    """The DDPMPipeline with the EMA weights, its snapshots and training.json, written whole or not at all."""
    with sampling_weights(unet, ema), atomic_dir(out_dir) as tmp:
        DDPMPipeline(unet=unet.eval().to("cpu"), scheduler=scheduler).save_pretrained(tmp)
        if snapshot_dir.is_dir():
            shutil.copytree(snapshot_dir, Path(tmp) / SNAPSHOTS)
        write_json(Path(tmp) / "training.json", record)


def _resume(ckpt_path, identity, unet, optimizer, lr_schedule, ema, loss_log, snapshot_dir, main=True) -> int:
    """The step to start from: the checkpoint's, loaded into the models, where it is for the very same
    settings and data; else 0, with the loss log and snapshots of another run removed (by the main rank)."""
    state = load_torch(ckpt_path, "ddpm-train") if ckpt_path.exists() else None
    if state is not None and state.get("identity") == identity:
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if main:
            log.info("resuming DDPM training from step %d (%s)", state["step"], ckpt_path)
        return state["step"]
    if not main:
        return 0
    if state is not None:
        log.warning("%s is for other settings or data; starting afresh", ckpt_path)
    loss_log.unlink(missing_ok=True)
    shutil.rmtree(snapshot_dir, ignore_errors=True)
    return 0


def _training_step(unet, optimizer, lr_schedule, ema, scheduler, images, cfg, step, device, rank=0) -> float:
    """One optimisation step on step ``step``'s batch (this rank's share of it); returns the batch's loss."""
    bf16 = cfg.precision == "bfloat16"
    dtype = torch.bfloat16 if bf16 else torch.float32  # what the attention runs in under autocast
    batch = _training_batch(images, scheduler, cfg, step)  # every rank draws the whole batch: one per step
    x_t, noise, t = (v.chunk(cfg.processes)[rank].to(device) for v in batch)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16), attention_kernel(device, dtype):
        pred = unet(x_t, t).sample
    per_sample = loss_weights(scheduler, t, cfg) * (pred.float() - noise).pow(2).flatten(1).mean(1)
    # the batch's mean: this rank's share of it, summed over the ranks with the gradients below
    loss = per_sample.mean() if cfg.processes == 1 else per_sample.sum() / cfg.batch_size
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.processes > 1:
        loss, = sum_across_ranks(unet.parameters(), loss)
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"DDPM loss became {loss.item()} at step {step}; lower the learning rate")
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
    optimizer.step()
    lr_schedule.step()
    if ema is not None:
        ema.step(unet.parameters())
    return loss.item()


def loss_weights(scheduler: DDPMScheduler, t: torch.Tensor, cfg: DDPMTrainConfig) -> torch.Tensor:
    """Per-sample weight of the eps loss: 1, or min-SNR's min(SNR(t), gamma) / SNR(t) (Hang et al. 2023)."""
    if cfg.loss_weighting == "uniform":
        return torch.ones(t.shape, device=t.device)
    snr = compute_snr(scheduler, t)
    return snr.clamp(max=cfg.min_snr_gamma) / snr


@contextlib.contextmanager
def sampling_weights(unet: UNet2DModel, ema: EMAModel | None):
    """The UNet holds the EMA weights inside the block (sampling uses them), its own after."""
    if ema is None:
        yield
        return
    ema.store(unet.parameters())
    ema.copy_to(unet.parameters())
    try:
        yield
    finally:
        ema.restore(unet.parameters())


def snapshot_steps(ddpm_dir: str | os.PathLike) -> dict[int, Path]:
    """step -> file of the sampling weights kept during training (``snapshot_every``), in step order."""
    files = sorted((Path(ddpm_dir) / SNAPSHOTS).glob("step_*.safetensors"))
    return {int(f.stem.split("_")[1]): f for f in files}


def load_snapshot(unet: UNet2DModel, path: str | os.PathLike) -> UNet2DModel:
    """Put a snapshot's weights into ``unet`` (the pipeline's, same shape), keeping its dtype and device."""
    param = next(unet.parameters())
    state = safetensors.torch.load_file(str(path))
    unet.load_state_dict({k: v.to(param.device, param.dtype) for k, v in state.items()})
    return unet


def _fingerprint(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]


def _save_checkpoint(path, unet, optimizer, lr_schedule, ema, step, identity):
    with atomic_path(path) as tmp:
        torch.save({"kind": "ddpm-train", "step": step, "identity": identity, "unet": unet.state_dict(),
                    "optimizer": optimizer.state_dict(), "lr_schedule": lr_schedule.state_dict(),
                    "ema": None if ema is None else ema.state_dict()}, tmp)


def _save_snapshot(directory: Path, unet: UNet2DModel, step: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / f"step_{step:06d}.safetensors") as tmp:
        safetensors.torch.save_file({k: v.detach().cpu().contiguous() for k, v in unet.state_dict().items()},
                                    str(tmp))
