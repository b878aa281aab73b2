"""``gradcheck``: one subcommand per workflow step, explicit inputs and outputs, logs on stderr.

Every Snakemake rule is a thin call of one of these; none of them knows about Snakemake.
Errors caused by bad input exit with status 2 and a one-line message naming it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("gradcheck")


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _steps(text: str) -> int | None:
    """A positive number of sampling steps, or 'all' (None): every training timestep."""
    return None if text.lower() == "all" else _positive(text)


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null") else float(text)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _confidence(text: str) -> float:
    """A confidence level strictly between 0 and 1, refused before any sampling or bootstrap."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (e.g. 0.95), got {value}")
    return value


# --- subcommands ----------------------------------------------------------------------------


def cmd_make_data(a):
    from .data import build_dataset, contact_sheet, save_dataset

    classes, scale_range = tuple(a.classes), tuple(a.scale_range)
    data = build_dataset(a.train_per_class, a.val_per_class, a.size, a.seed, classes=classes, scale_range=scale_range)
    save_dataset(a.out, data, seed=a.seed, size=a.size, classes=classes, scale_range=scale_range)
    if a.sheet:
        contact_sheet(data["train_images"], data["train_labels"], a.sheet, classes=classes)
    log.info("wrote %d training and %d validation images of %d px to %s",
             len(data["train_labels"]), len(data["val_labels"]), a.size, a.out)


def cmd_import_images(a):
    from .data import contact_sheet, save_dataset
    from .folder import folder_source, read_image_folder

    data, classes = read_image_folder(a.folder, a.size, a.val_fraction, a.seed)
    save_dataset(a.out, data, seed=a.seed, size=a.size, classes=classes, source=folder_source(a.folder))
    if a.sheet:
        contact_sheet(data["train_images"], data["train_labels"], a.sheet, classes=classes)
    log.info("wrote %d training and %d validation images of %d px in %d classes (%s) from %s to %s",
             len(data["train_labels"]), len(data["val_labels"]), a.size, len(classes), ", ".join(classes),
             a.folder, a.out)


def cmd_export_digits(a):
    from .digits import export_digits

    n = export_digits(a.out)
    log.info("wrote %d digit images (scikit-learn's load_digits, 8 px) in 10 class folders to %s", n, a.out)


def cmd_train_ddpm(a):
    from .data import images_to_tensor, load_dataset
    from .ddpm import DDPMTrainConfig, UNetConfig, train_ddpm
    from .device import pick_device

    cfg = DDPMTrainConfig(
        unet=UNetConfig(tuple(a.block_out_channels), a.layers_per_block, tuple(a.attention), a.norm_num_groups,
                        a.mid_attention),
        num_train_timesteps=a.timesteps, scale_betas=a.scale_betas, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
        warmup_steps=a.warmup_steps, lr_schedule=a.lr_schedule, grad_clip=a.grad_clip,
        loss_weighting=a.loss_weighting, min_snr_gamma=a.min_snr_gamma, precision=a.precision,
        ema_decay=a.ema_decay, checkpoint_every=a.checkpoint_every, snapshot_every=a.snapshot_every, seed=a.seed)
    images = images_to_tensor(load_dataset(a.data)["train_images"])
    work = Path(a.work_dir or Path(a.out).with_name(Path(a.out).name + ".ckpt"))
    train_ddpm(images, a.out, cfg, pick_device(a.device), work, stop_after=a.stop_after)


def cmd_train_classifier(a):
    from .atomic import write_json
    from .classifier import ClassifierTrainConfig, save_classifier, train_classifier
    from .data import images_to_tensor, load_dataset
    from .ddpm import build_scheduler
    from .device import pick_device

    cfg = ClassifierTrainConfig(mode=a.mode, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                                patience=a.patience, seed=a.seed, architecture=a.architecture)
    data = load_dataset(a.data)
    scheduler = build_scheduler(a.timesteps, a.scale_betas)
    model, report = train_classifier(
        images_to_tensor(data["train_images"]), _labels(data["train_labels"]),
        images_to_tensor(data["val_images"]), _labels(data["val_labels"]),
        scheduler, cfg, len(data["classes"]), pick_device(a.device))
    classes = tuple(str(c) for c in data["classes"])
    save_classifier(a.out, model.cpu(), classes, int(data["size"]), a.mode, a.architecture)
    write_json(a.report, report)
    log.info("%s classifier: clean accuracy %.4f, noisy accuracy %.4f",
             a.mode, report["clean_accuracy"], report["noisy_accuracy"])


def cmd_bring_ddpm(a):
    from .pretrained import bring_ddpm

    bring_ddpm(a.pipeline, a.out, a.image_size, a.timesteps, a.scale_betas)


def cmd_bring_classifier(a):
    from .device import pick_device
    from .pretrained import bring_classifier

    bring_classifier(a.file, a.out, a.report, a.data, a.role, a.timesteps, a.scale_betas, pick_device(a.device))


def cmd_sample(a):
    import numpy as np

    from .atomic import atomic_path
    from .classifier import load_classifier
    from .ddpm import load_pipeline
    from .device import describe, pick_device
    from .guidance import GuidanceSettings, per_sample_seeds, sample_seeds
    from .metrics import uint8_images
    from .speed import to_classifier_layout

    device = pick_device(a.device)
    unet, scheduler = load_pipeline(a.ddpm, device, a.unet_dtype)
    classifier, meta = load_classifier(a.classifier, device)
    judge = None
    if a.judge:
        judge, judge_meta = load_classifier(a.judge, device)
        if judge_meta["classes"] != meta["classes"]:
            raise ValueError(f"judge {a.judge} knows classes {judge_meta['classes']}, "
                             f"the classifier {a.classifier} {meta['classes']}")
        judge.requires_grad_(False)
    if meta["image_size"] != unet.config.sample_size:
        raise ValueError(f"classifier {a.classifier} was trained on {meta['image_size']} px images "
                         f"but the DDPM {a.ddpm} makes {unet.config.sample_size} px images")
    if a.target not in meta["classes"]:
        raise ValueError(f"unknown target class {a.target!r}; {a.classifier} knows: {', '.join(meta['classes'])}")
    target = meta["classes"].index(a.target)
    settings = GuidanceSettings(scale=a.scale, target=target, x0_hat=a.x0_hat, stabiliser=a.stabiliser,
                                adam_eps=a.adam_eps, bias_correction=a.bias_correction, objective=a.objective,
                                clip_x0=a.clip_x0, normalise=a.normalise)
    if a.steps is not None and a.steps > scheduler.config.num_train_timesteps:
        raise ValueError(f"--steps {a.steps} exceeds the {scheduler.config.num_train_timesteps} training "
                         f"timesteps of {a.ddpm}")
    if len(set(a.seeds)) != len(a.seeds):
        raise ValueError(f"--seeds repeats a seed: {a.seeds}")
    seeds = per_sample_seeds(a.seeds, a.num_samples)
    log.info("sampling %d images (%d per seed, seeds %s) with %s on %s",
             len(seeds), a.num_samples, a.seeds, settings, describe(device))
    classifier.requires_grad_(False)
    unet.requires_grad_(False)
    to_classifier_layout(classifier, device)
    to_classifier_layout(judge, device)
    images, trace = sample_seeds(seeds, unet, scheduler, classifier, settings, a.batch_size, a.steps, device,
                                 judge=judge, judge_every=a.judge_every)
    record = {"settings": {**vars(settings), "adam": settings.adam}, "target_name": a.target,
              "ddpm": str(a.ddpm), "classifier": str(a.classifier), "judge": a.judge and str(a.judge),
              "judge_every": a.judge_every, "sampling_seeds": a.seeds, "samples_per_seed": a.num_samples,
              "num_inference_steps": a.steps or scheduler.config.num_train_timesteps,
              "num_train_timesteps": scheduler.config.num_train_timesteps, "unet_dtype": a.unet_dtype,
              "device": describe(device)}
    with atomic_path(a.out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=uint8_images(images), seeds=np.array(seeds),
                            seed_index=np.repeat(np.arange(len(a.seeds)), a.num_samples),
                            timesteps=trace.timesteps.numpy(), record=np.array(json.dumps(record)),
                            **{name: getattr(trace, name).numpy() for name in trace.PER_SAMPLE})


def cmd_evaluate(a):
    import numpy as np

    from .atomic import write_json
    from .classifier import load_classifier, predict
    from .data import images_to_tensor, load_dataset
    from .evaluate import cell_metrics, groups_of
    from .metrics import feature_network, frechet_distance, image_features, kernel_inception_distance
    from .samples import load_replicates

    if len(a.classifier) not in (1, len(a.samples)):
        raise ValueError(f"--classifier takes one guide per --samples file (its replicate's), "
                         f"got {len(a.classifier)} for {len(a.samples)}")
    guides = a.classifier * len(a.samples) if len(a.classifier) == 1 else a.classifier
    samples = load_replicates(a.samples)
    record, settings = samples["record"], samples["record"]["settings"]
    target, fake = settings["target"], samples["images"]
    groups = groups_of(samples["seed_index"], samples["replicate"])
    smallest = min(len(idx) for _, _, idx in groups)
    n = a.n or smallest
    if n > smallest:
        raise ValueError(f"--n {n} exceeds the {smallest} samples per seed in {a.samples}")
    data = load_dataset(a.data)
    data_classes = [str(c) for c in data["classes"]]  # the data set's own labels, by the target's name
    if record["target_name"] not in data_classes:
        raise ValueError(f"{a.data} has no class {record['target_name']!r}; its classes: {', '.join(data_classes)}")
    real = data["train_images"][data["train_labels"] == data_classes.index(record["target_name"])]
    if len(real) < n * len(groups):
        raise ValueError(f"{a.data} has {len(real)} training images of class {target}; "
                         f"{len(groups)} seeds (of every replicate) x {n} need {n * len(groups)}")

    # Per sample: does its replicate's guide, and does the independent judge, see the target?
    x = images_to_tensor(fake)
    guide_says = np.zeros(len(fake), bool)
    for r, path in enumerate(guides):
        rows = samples["replicate"] == r
        guide_says[rows] = (predict(load_classifier(path)[0], x[rows]) == target).numpy()
    judge_says = (predict(load_classifier(a.judge)[0], x) == target).numpy()

    feature_clf = load_classifier(a.feature_classifier)[0] if a.feature_classifier else None
    feature, feature_name = feature_network(a.features, inception_weights=a.inception_weights,
                                            classifier=feature_clf)
    # Group g (a seed of a replicate) is compared with its own n real images: groups are independent.
    pairs = [(real[g * n:(g + 1) * n], fake[idx[:n]]) for g, (_, _, idx) in enumerate(groups)]
    features = [(image_features(r, feature), image_features(f, feature)) for r, f in pairs]
    row = {"classifier": a.label or Path(guides[0]).stem, "x0": settings["x0_hat"],
           "stabiliser": settings["stabiliser"], "adam": settings["adam"], "scale": settings["scale"],
           "target": record["target_name"], "replicates": len(a.samples),
           "seeds": len(groups) // len(a.samples),  # sampling seeds per replicate
           "samples_per_seed": smallest, "n": n, "features": feature_name, "confidence": a.confidence,
           "n_boot": a.n_boot, "samples": " ".join(map(str, a.samples))}
    row |= cell_metrics(guide_says=guide_says, judge_says=judge_says, cosine=samples["cosine"],
                        seed_index=samples["seed_index"], replicate=samples["replicate"], features=features,
                        fid=[frechet_distance(r, f, feature) for r, f in pairs],
                        kid=[kernel_inception_distance(r, f, feature) for r, f in pairs],
                        n_boot=a.n_boot, confidence=a.confidence, bootstrap_seed=a.bootstrap_seed)
    write_json(a.out, row)
    log.info("%s: accuracy %.3f, judge %.3f, fooled %.3f, FID %.3f, KID %.4f (%s, %d replicates x %d seeds x n=%d)",
             row["samples"], row["accuracy"], row["judge_accuracy"], row["fooled"], row["fid"], row["kid"],
             feature_name, row["replicates"], row["seeds"], n)


def cmd_ddpm_quality(a):
    import pandas as pd

    from .atomic import atomic_path
    from .classifier import load_classifier
    from .data import load_dataset
    from .ddpm import load_pipeline, load_snapshot, snapshot_steps
    from .device import pick_device
    from .metrics import feature_network, image_features
    from .plots import ddpm_quality_figure
    from .pretrained import PRETRAINED_JSON
    from .quality import RealReference, quality_row, unguided_samples

    device = pick_device(a.device)
    unet, scheduler = load_pipeline(a.ddpm, device, a.unet_dtype)
    judge, meta = load_classifier(a.judge, device)
    data = load_dataset(a.data)
    classes = [str(c) for c in data["classes"]]
    if list(meta["classes"]) != classes:
        raise ValueError(f"judge {a.judge} knows classes {meta['classes']}, the data set {a.data} {classes}")
    # FID features on the CPU, as `evaluate` computes them; a copy of the judge, so it stays on device
    feature, feature_name = feature_network("features", classifier=load_classifier(a.feature_classifier or a.judge)[0])
    # the real sets and their real-vs-real FID are the same for every snapshot: drawn once
    reference = RealReference.draw(image_features(data["train_images"], feature), len(a.seeds) * a.num_samples,
                                   a.real_draws)
    brought = (Path(a.ddpm) / PRETRAINED_JSON).is_file()
    if brought:  # a brought DDPM has no training: its final weights only, at no step
        checkpoints = {float("nan"): None}
    else:
        training = json.loads((Path(a.ddpm) / "training.json").read_text())
        checkpoints = {**snapshot_steps(a.ddpm), training["config"]["steps"]: None}  # None: the final weights
    final_weights = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    rows = []
    for step, snapshot in checkpoints.items():
        if snapshot is None:
            unet.load_state_dict(final_weights)
        else:
            load_snapshot(unet, snapshot)
        images = unguided_samples(unet, scheduler, a.seeds, a.num_samples, a.batch_size, a.steps, device)
        row = {"step": step, "final": snapshot is None, "samples": len(images),
               "sampling_steps": a.steps or scheduler.config.num_train_timesteps, "features": feature_name}
        row |= quality_row(images, judge, feature, reference, classes, a.confidence)
        rows.append(row)
        log.info("%s: FID %.1f (%.2fx real vs real), class shares %s", "brought DDPM" if brought else f"step {step}",
                 row["fid"], row["fid_ratio"], ", ".join(f"{c} {row[f'share_{c}']:.0%}" for c in classes))
    frame = pd.DataFrame(rows)
    with atomic_path(a.csv) as tmp:
        frame.to_csv(tmp, index=False)
    if a.figure:
        what = "brought DDPM (no training curve)" if brought else "unconditional DDPM over training"
        ddpm_quality_figure(frame, a.figure, f"{what}: {len(images)} unguided samples "
                            f"at s = 0, judge features ({feature_name})")


def _labels(labels):
    import torch

    return torch.as_tensor(labels, dtype=torch.long)


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from .data import BALLS, CLASSES, SCALE_RANGE  # numpy and PIL only: no torch

    p = argparse.ArgumentParser(
        prog="gradcheck",
        description="GradCheck: analyse classifier-guidance gradients in diffusion models. "
        "One subcommand per workflow step; `gradcheck COMMAND --help` explains its options.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("make-data", help="draw the SportBalls data set")
    s.add_argument("--out", required=True, help="output .npz (images uint8 + labels, train and validation)")
    s.add_argument("--sheet", help="optional contact-sheet PNG of training examples")
    s.add_argument("--size", type=_positive, default=32, help="image side in pixels (paper: 64)")
    s.add_argument("--train-per-class", type=_positive, default=2000, help="training images per class")
    s.add_argument("--val-per-class", type=_positive, default=250, help="validation images per class")
    s.add_argument("--seed", type=int, default=0, help="data set seed")
    s.add_argument("--classes", nargs="+", choices=BALLS, default=list(CLASSES), metavar="NAME",
                   help=f"ball classes in label order, two or more of {', '.join(BALLS)} "
                   f"(default: {' '.join(CLASSES)}; authors: baseball basketball volleyball soccer)")
    s.add_argument("--scale-range", nargs=2, type=float, default=list(SCALE_RANGE), metavar=("LOW", "HIGH"),
                   help=f"ball diameter range as fractions of the image side (default: {SCALE_RANGE[0]:g} "
                   f"{SCALE_RANGE[1]:g}; authors: about 0.15 0.40)")
    s.set_defaults(func=cmd_make_data)

    s = sub.add_parser("import-images", help="read your own image folder into a data set .npz, as make-data writes")
    s.add_argument("--folder", required=True,
                   help="image folder in torchvision's ImageFolder layout: FOLDER/<class>/<image>, two or more "
                   "classes; class names are the sub-folder names, labels in their sorted order")
    s.add_argument("--out", required=True, help="output .npz (images uint8 + labels, train and validation)")
    s.add_argument("--sheet", help="optional contact-sheet PNG of training examples")
    s.add_argument("--size", type=_positive, default=32,
                   help="image side in pixels: every image is converted to RGB and resized to SIZE x SIZE "
                   "(bilinear, aspect ratio not kept)")
    s.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of each class held out for validation, rounded, at least one image "
                   "(and at least one left for training)")
    s.add_argument("--seed", type=int, default=0, help="seed of the validation split and the shuffle")
    s.set_defaults(func=cmd_import_images)

    s = sub.add_parser("export-digits",
                       help="write scikit-learn's 8 px handwritten digits as an image folder (for import-images)")
    s.add_argument("--out", required=True,
                   help="output folder: OUT/<digit>/<index>.png, 1797 grayscale PNGs; must be new, empty or "
                   "an earlier export")
    s.set_defaults(func=cmd_export_digits)

    s = sub.add_parser("train-ddpm", help="train the unconditional DDPM (diffusers UNet2DModel)")
    s.add_argument("--data", required=True, help="SportBalls .npz from make-data")
    s.add_argument("--out", required=True, help="output DDPMPipeline directory (save_pretrained)")
    s.add_argument("--work-dir", help="checkpoint directory for resuming (default: OUT.ckpt)")
    s.add_argument("--block-out-channels", type=_positive, nargs="+", default=[32, 64, 128],
                   help="channels per resolution level (paper: 64 128 192 256)")
    s.add_argument("--layers-per-block", type=_positive, default=1, help="ResNet layers per level (paper: 2)")
    s.add_argument("--attention", type=_bool, nargs="+", default=[False, False, False],
                   help="self-attention per level, shallowest first (paper: false true true true)")
    s.add_argument("--norm-num-groups", type=_positive, default=32,
                   help="GroupNorm groups; every level's channels must divide into them (diffusers: 32)")
    s.add_argument("--mid-attention", type=_bool, default=True,
                   help="self-attention in the middle block at the deepest level (diffusers' default: true)")
    s.add_argument("--timesteps", type=_positive, default=1000, help="diffusion steps T (paper: 1000)")
    s.add_argument("--scale-betas", type=_bool, default=False,
                   help="scale the linear betas (1e-4 -> 0.02) by 1000 / T, so x_T is pure noise at any T")
    s.add_argument("--steps", type=_positive, default=1000, help="optimisation steps")
    s.add_argument("--batch-size", type=_positive, default=64)
    s.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    s.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up (the authors: 500)")
    s.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="after warm-up: constant, or cosine decay to 0 at the last step (the authors)")
    s.add_argument("--grad-clip", type=_optional_float, default=None,
                   help="clip the gradient norm to this ('none': off; the authors: 1.0)")
    s.add_argument("--loss-weighting", choices=["uniform", "min_snr"], default="uniform",
                   help="eps loss weighted alike at every t, or by min(SNR, gamma) / SNR (min-SNR)")
    s.add_argument("--min-snr-gamma", type=float, default=5.0, help="gamma of min-SNR weighting")
    s.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="autocast the UNet's forward to bfloat16 (a step in 0.7x the time of float32 on a CPU "
                   "with avx512_bf16, benchmarks/training_speed.py)")
    s.add_argument("--ema-decay", type=float, default=0.995, help="EMA decay of the sampling weights (0: no EMA)")
    s.add_argument("--checkpoint-every", type=_positive, default=200, help="steps between resumable checkpoints")
    s.add_argument("--snapshot-every", type=int, default=0,
                   help="keep the sampling weights every this many steps in OUT/snapshots (0: none)")
    s.add_argument("--stop-after", type=_positive, help="stop at this step after checkpointing (testing)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    s.set_defaults(func=cmd_train_ddpm)

    s = sub.add_parser("train-classifier", help="train a MobileNetV3-small classifier")
    s.add_argument("--data", required=True, help="SportBalls .npz from make-data")
    s.add_argument("--mode", required=True, choices=["noisy", "clean"],
                   help="noisy: robust, trained on x_t with t uniform; clean: non-robust")
    s.add_argument("--out", required=True, help="output weights (.pt)")
    s.add_argument("--report", required=True, help="output JSON with clean and noisy validation accuracy")
    s.add_argument("--timesteps", type=_positive, default=1000, help="the DDPM's T, for the noise schedule")
    s.add_argument("--scale-betas", type=_bool, default=False, help="the DDPM's scale_betas, for the noise schedule")
    s.add_argument("--epochs", type=_positive, default=30)
    s.add_argument("--batch-size", type=_positive, default=128)
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--patience", type=_positive, default=5, help="early stopping patience in epochs")
    s.add_argument("--architecture", default="mobilenet_v3_small",
                   choices=["mobilenet_v3_small", "shufflenet_v2_x0_5", "resnet18"], help="torchvision architecture")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    s.set_defaults(func=cmd_train_classifier)

    s = sub.add_parser("bring-ddpm", help="check your own DDPM pipeline directory and copy it in place of training")
    s.add_argument("--pipeline", required=True,
                   help="diffusers DDPMPipeline directory (save_pretrained): an unconditional UNet2DModel "
                   "predicting epsilon for RGB images, with GradCheck's linear beta schedule")
    s.add_argument("--out", required=True, help="output DDPMPipeline directory: the copy, with pretrained.json")
    s.add_argument("--image-size", type=_positive, required=True, help="the data set's image side; the UNet's "
                   "sample_size must equal it")
    s.add_argument("--timesteps", type=_positive, required=True, help="diffusion steps T the pipeline must have")
    s.add_argument("--scale-betas", type=_bool, required=True,
                   help="the schedule the pipeline must have: betas 1e-4 -> 0.02, scaled by 1000 / T if true")
    s.set_defaults(func=cmd_bring_ddpm)

    s = sub.add_parser("bring-classifier", help="check your own classifier file, evaluate it and save it for use")
    s.add_argument("--file", required=True,
                   help="TorchScript (torch.jit.save; images (N, 3, S, S) in [-1, 1] -> logits (N, C), classes "
                   "in the data set's label order) or a GradCheck classifier file (architecture + state dict)")
    s.add_argument("--role", required=True, choices=["robust", "nonrobust", "judge", "features"],
                   help="what it is used as; the FID feature network (features) must also give pooled features")
    s.add_argument("--data", required=True, help="data set .npz: classes, image size and validation images")
    s.add_argument("--out", required=True, help="output classifier (.pt), loaded as a trained one is")
    s.add_argument("--report", required=True, help="output JSON with clean and noisy validation accuracy")
    s.add_argument("--timesteps", type=_positive, default=1000, help="the DDPM's T, for the noise schedule")
    s.add_argument("--scale-betas", type=_bool, default=False, help="the DDPM's scale_betas, for the noise schedule")
    s.add_argument("--device", default="cpu",
                   help="where to evaluate it: cpu (default; a validation pass is cheap) | auto | cuda[:N]")
    s.set_defaults(func=cmd_bring_classifier)

    s = sub.add_parser("sample", help="guided sampling of one grid cell")
    s.add_argument("--ddpm", required=True, help="DDPMPipeline directory from train-ddpm")
    s.add_argument("--classifier", required=True, help="guiding classifier (.pt)")
    s.add_argument("--target", required=True, help="target class name, e.g. baseball")
    s.add_argument("--scale", type=float, required=True, help="guidance scale s (0: unguided)")
    s.add_argument("--x0-hat", type=_bool, default=False, help="classify the x0 estimate (eq. 3)")
    s.add_argument("--stabiliser", default="none",
                   help="none | adam (eq. 4) | ema<beta>, e.g. ema0.9: momentum of the classifier gradient")
    s.add_argument("--judge", help="classifier (.pt) that scores x0_hat while sampling, never guiding")
    s.add_argument("--judge-every", type=_positive, default=1,
                   help="the judge scores every this many steps and the last (its cost is a classifier forward)")
    s.add_argument("--num-samples", type=_positive, default=64, help="samples per sampling seed")
    s.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="sampling seeds; sample i of seed s uses generator seed s*1000000+i, in every cell")
    s.add_argument("--batch-size", type=_positive, default=64, help="does not change the samples")
    s.add_argument("--steps", type=_steps, help="respaced sampling steps, or 'all' (default): every one of the T")
    s.add_argument("--objective", choices=["log_prob", "logit"], default="log_prob",
                   help="differentiate log p(y | x) (eq. 1) or the raw target logit (the authors' code)")
    s.add_argument("--clip-x0", type=_bool, default=False,
                   help="classify clip(x0_hat, -1, 1) as diffusers' pred_original_sample (the authors' code)")
    s.add_argument("--normalise", type=_bool, default=True, help="rescale g to ||eps|| per sample (eq. 2)")
    s.add_argument("--adam-eps", type=float, default=1e-8, help="ADAM's eps (the authors' code: 1e-4)")
    s.add_argument("--bias-correction", type=_bool, default=True,
                   help="bias-correct ADAM's and the EMA's moments (the authors' code: false)")
    s.add_argument("--unet-dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="precision of the UNet while sampling; the classifier gradient stays float32")
    s.add_argument("--out", required=True, help="output .npz: images, seeds and the gradient trace")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("evaluate", help="accuracy (guide and judge), FID and KID of one cell, with bootstrap CIs")
    s.add_argument("--samples", nargs="+", required=True,
                   help=".npz from sample: one per training replicate of the cell, in replicate order")
    s.add_argument("--classifier", nargs="+", required=True,
                   help="the guiding classifier (.pt) of each replicate, in the same order (one: every replicate's)")
    s.add_argument("--judge", required=True, help="the independent judge classifier (.pt), never guiding")
    s.add_argument("--label", help="name of the guiding classifier in the table (default: file stem)")
    s.add_argument("--data", required=True, help="SportBalls .npz: the real target-class images")
    s.add_argument("--n", type=_positive, help="images per side and seed for FID and KID (default: samples per seed)")
    s.add_argument("--features", choices=["inception", "features"], required=True,
                   help="FID/KID features: Inception-v3 (weights on disk) or the pooled features of --feature-classifier")
    s.add_argument("--inception-weights", help="torch-fidelity Inception-v3 weights (.pth)")
    s.add_argument("--feature-classifier", help="classifier (.pt) whose pooled features FID and KID use")
    s.add_argument("--n-boot", type=_positive, default=1000, help="bootstrap replicates for the intervals")
    s.add_argument("--confidence", type=_confidence, default=0.95, help="confidence level of the intervals")
    s.add_argument("--bootstrap-seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output JSON")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("ddpm-quality", help="class mix and FID of unguided samples, at every training snapshot")
    s.add_argument("--ddpm", required=True,
                   help="DDPMPipeline directory from train-ddpm (with snapshots/) or bring-ddpm (final weights only)")
    s.add_argument("--judge", required=True, help="judge classifier (.pt): class mix and FID features")
    s.add_argument("--data", required=True, help="SportBalls .npz: real images of all classes")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds, as the cells use")
    s.add_argument("--num-samples", type=_positive, default=32, help="samples per sampling seed")
    s.add_argument("--batch-size", type=_positive, default=96, help="does not change the samples")
    s.add_argument("--steps", type=_steps, help="respaced sampling steps, or 'all' (default)")
    s.add_argument("--unet-dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    s.add_argument("--feature-classifier",
                   help="classifier (.pt) whose pooled features the FID uses (default: the judge's, where FID's "
                   "features are Inception's, which ddpm-quality does not load)")
    s.add_argument("--real-draws", type=_positive, default=5,
                   help="random draws of the real sets that both FIDs are averaged over")
    s.add_argument("--confidence", type=_confidence, default=0.95, help="confidence level of the class shares' intervals")
    s.add_argument("--csv", required=True, help="output CSV: one row per snapshot and the final weights")
    s.add_argument("--figure", help="output PNG: FID ratio and class mix against training step")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    s.set_defaults(func=cmd_ddpm_quality)

    from .report_cli import add_report_commands
    add_report_commands(sub)
    for command in sub.choices.values():
        command.add_argument("--threads", type=int, default=0,
                             help="torch CPU threads (0: every core this process may use)")
    return p


def set_threads(threads: int) -> None:
    """Use the cores we were given; torch would otherwise follow OMP_NUM_THREADS.

    Snakemake sets OMP_NUM_THREADS to a job's `threads`, which `--cores 1` caps at one.
    The affinity mask respects what SLURM or taskset allotted to this process. torch reads
    OMP_NUM_THREADS when first imported, so commands that never import it (the figures)
    start without paying for it.
    """
    if threads < 0:
        raise ValueError(f"--threads must be 0 or positive, got {threads}")
    count = threads or len(os.sched_getaffinity(0))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .errors import CheckpointError, GuidanceError

    try:
        set_threads(args.threads)
        args.func(args)
    except (ValueError, FileNotFoundError, CheckpointError, GuidanceError) as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
