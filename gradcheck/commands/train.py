"""Stage 2, the models: train the DDPM and the classifiers, or bring your own in their place."""

from __future__ import annotations

import logging
from pathlib import Path

from ..settings import (ARCHITECTURES, CLASSIFIER_MODES, LOSS_WEIGHTINGS, LR_SCHEDULES, PRECISIONS, ROLES,
                        ClassifierTrainConfig, DDPMTrainConfig, UNetConfig)
from . import DEVICE_HELP, boolean, command, optional_float, option, positive

log = logging.getLogger("gradcheck")
DDPM, UNET, CLASSIFIER = DDPMTrainConfig, UNetConfig, ClassifierTrainConfig


@command("train-ddpm", help="train the unconditional DDPM (diffusers UNet2DModel)")
@option("--data", required=True, help="data set .npz from make-data or import-images")
@option("--out", required=True, help="output DDPMPipeline directory (save_pretrained)")
@option("--work-dir", help="checkpoint directory for resuming (default: OUT.ckpt)")
@option("--block-out-channels", type=positive, nargs="+", setting=(UNET, "block_out_channels"),
        help="channels per resolution level (paper: 64 128 192 256)")
@option("--layers-per-block", type=positive, setting=(UNET, "layers_per_block"), help="ResNet layers per level (paper: 2)")
@option("--attention", type=boolean, nargs="+", setting=(UNET, "attention"),
        help="self-attention per level, shallowest first (paper: false true true true)")
@option("--norm-num-groups", type=positive, setting=(UNET, "norm_num_groups"),
        help="GroupNorm groups; every level's channels must divide into them (diffusers: 32)")
@option("--mid-attention", type=boolean, setting=(UNET, "mid_attention"),
        help="self-attention in the middle block at the deepest level (diffusers' default: true)")
@option("--timesteps", type=positive, setting=(DDPM, "num_train_timesteps"), help="diffusion steps T (the authors' model: 400)")
@option("--scale-betas", type=boolean, setting=(DDPM, "scale_betas"),
        help="scale the linear betas (1e-4 -> 0.02) by 1000 / T, so x_T is pure noise at any T")
@option("--steps", type=positive, setting=(DDPM, "steps"), help="optimisation steps")
@option("--batch-size", type=positive, setting=(DDPM, "batch_size"))
@option("--lr", type=float, setting=(DDPM, "lr"), help="AdamW learning rate")
@option("--warmup-steps", type=int, setting=(DDPM, "warmup_steps"), help="linear learning-rate warm-up (the authors: 500)")
@option("--lr-schedule", choices=LR_SCHEDULES, setting=(DDPM, "lr_schedule"),
        help="after warm-up: constant, or cosine decay to 0 at the last step (the authors)")
@option("--grad-clip", type=optional_float, setting=(DDPM, "grad_clip"),
        help="clip the gradient norm to this ('none': off; the authors: 1.0)")
@option("--loss-weighting", choices=LOSS_WEIGHTINGS, setting=(DDPM, "loss_weighting"),
        help="eps loss weighted alike at every t, or by min(SNR, gamma) / SNR (min-SNR)")
@option("--min-snr-gamma", type=float, setting=(DDPM, "min_snr_gamma"), help="gamma of min-SNR weighting")
@option("--precision", choices=PRECISIONS, setting=(DDPM, "precision"),
        help="autocast the UNet's forward to bfloat16 (a step in 0.7x the time of float32 on a CPU "
        "with avx512_bf16, benchmarks/training_speed.py)")
@option("--ema-decay", type=float, setting=(DDPM, "ema_decay"), help="EMA decay of the sampling weights (0: no EMA)")
@option("--checkpoint-every", type=positive, setting=(DDPM, "checkpoint_every"), help="steps between resumable checkpoints")
@option("--snapshot-every", type=int, setting=(DDPM, "snapshot_every"),
        help="keep the sampling weights every this many steps in OUT/snapshots (0: none)")
@option("--stop-after", type=positive, help="stop at this step after checkpointing (testing)")
@option("--seed", type=int, setting=(DDPM, "seed"))
@option("--processes", type=positive, setting=(DDPM, "processes"),
        help="data-parallel processes, each with --threads / processes threads, that split every batch (CPU)")
@option("--device", default="auto", help=DEVICE_HELP)
def train_ddpm(a):
    from ..data import images_to_tensor, load_dataset
    from ..ddpm import train_ddpm as train
    from ..device import pick_device

    cfg = DDPMTrainConfig(
        unet=UNetConfig(tuple(a.block_out_channels), a.layers_per_block, tuple(a.attention), a.norm_num_groups,
                        a.mid_attention),
        num_train_timesteps=a.timesteps, scale_betas=a.scale_betas, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
        warmup_steps=a.warmup_steps, lr_schedule=a.lr_schedule, grad_clip=a.grad_clip,
        loss_weighting=a.loss_weighting, min_snr_gamma=a.min_snr_gamma, precision=a.precision,
        ema_decay=a.ema_decay, checkpoint_every=a.checkpoint_every, snapshot_every=a.snapshot_every, seed=a.seed,
        processes=a.processes)
    images = images_to_tensor(load_dataset(a.data)["train_images"])
    work = Path(a.work_dir or Path(a.out).with_name(Path(a.out).name + ".ckpt"))
    train(images, a.out, cfg, pick_device(a.device), work, stop_after=a.stop_after)


@command("train-classifier", help="train a classifier: a guide (MobileNetV3-small), the judge or the FID features")
@option("--data", required=True, help="data set .npz from make-data or import-images")
@option("--mode", required=True, choices=CLASSIFIER_MODES,
        help="noisy: robust, trained on x_t with t uniform; clean: non-robust")
@option("--out", required=True, help="output weights (.pt)")
@option("--report", required=True, help="output JSON with clean and noisy validation accuracy")
@option("--timesteps", type=positive, setting=(DDPM, "num_train_timesteps"), help="the DDPM's T, for the noise schedule")
@option("--scale-betas", type=boolean, setting=(DDPM, "scale_betas"), help="the DDPM's scale_betas, for the noise schedule")
@option("--epochs", type=positive, setting=(CLASSIFIER, "epochs"))
@option("--batch-size", type=positive, setting=(CLASSIFIER, "batch_size"))
@option("--lr", type=float, setting=(CLASSIFIER, "lr"))
@option("--patience", type=positive, setting=(CLASSIFIER, "patience"), help="early stopping patience in epochs")
@option("--architecture", choices=ARCHITECTURES, setting=(CLASSIFIER, "architecture"), help="torchvision architecture")
@option("--seed", type=int, setting=(CLASSIFIER, "seed"))
@option("--device", default="auto", help=DEVICE_HELP)
def train_classifier(a):
    import torch

    from ..atomic import write_json
    from ..classifier import save_classifier
    from ..classifier import train_classifier as train
    from ..data import images_to_tensor, load_dataset
    from ..ddpm import build_scheduler
    from ..device import pick_device

    cfg = ClassifierTrainConfig(mode=a.mode, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                                patience=a.patience, seed=a.seed, architecture=a.architecture)
    data = load_dataset(a.data)
    labels = {split: torch.as_tensor(data[f"{split}_labels"], dtype=torch.long) for split in ("train", "val")}
    model, report = train(images_to_tensor(data["train_images"]), labels["train"],
                          images_to_tensor(data["val_images"]), labels["val"],
                          build_scheduler(a.timesteps, a.scale_betas), cfg, len(data["classes"]), pick_device(a.device))
    classes = tuple(str(c) for c in data["classes"])
    save_classifier(a.out, model.cpu(), classes, int(data["size"]), a.mode, a.architecture)
    write_json(a.report, report)
    log.info("%s classifier: clean accuracy %.4f, noisy accuracy %.4f",
             a.mode, report["clean_accuracy"], report["noisy_accuracy"])


@command("bring-ddpm", help="check your own DDPM pipeline directory and copy it in place of training")
@option("--pipeline", required=True,
        help="diffusers DDPMPipeline directory (save_pretrained): an unconditional UNet2DModel "
        "predicting epsilon for RGB images, with GradCheck's linear beta schedule")
@option("--out", required=True, help="output DDPMPipeline directory: the copy, with pretrained.json")
@option("--image-size", type=positive, required=True,
        help="the data set's image side; the UNet's sample_size must equal it")
@option("--timesteps", type=positive, required=True, help="diffusion steps T the pipeline must have")
@option("--scale-betas", type=boolean, required=True,
        help="the schedule the pipeline must have: betas 1e-4 -> 0.02, scaled by 1000 / T if true")
def bring_ddpm(a):
    from ..pretrained import bring_ddpm as bring

    bring(a.pipeline, a.out, a.image_size, a.timesteps, a.scale_betas)


@command("bring-classifier", help="check your own classifier file, evaluate it and save it for use")
@option("--file", required=True,
        help="TorchScript (torch.jit.save; images (N, 3, S, S) in [-1, 1] -> logits (N, C), classes "
        "in the data set's label order) or a GradCheck classifier file (architecture + state dict)")
@option("--role", required=True, choices=ROLES,
        help="what it is used as; the FID feature network (features) must also give pooled features")
@option("--data", required=True, help="data set .npz: classes, image size and validation images")
@option("--out", required=True, help="output classifier (.pt), loaded as a trained one is")
@option("--report", required=True, help="output JSON with clean and noisy validation accuracy")
@option("--timesteps", type=positive, setting=(DDPM, "num_train_timesteps"), help="the DDPM's T, for the noise schedule")
@option("--scale-betas", type=boolean, setting=(DDPM, "scale_betas"), help="the DDPM's scale_betas, for the noise schedule")
@option("--device", default="cpu", help="where to evaluate it: cpu (default; a validation pass is cheap) | auto | cuda[:N]")
def bring_classifier(a):
    from ..device import pick_device
    from ..pretrained import bring_classifier as bring

    bring(a.file, a.out, a.report, a.data, a.role, a.timesteps, a.scale_betas, pick_device(a.device))
