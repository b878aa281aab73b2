"""One grid cell's sampling job: load the DDPM and the classifiers, check that they fit, sample every seed.

The sampler itself is :func:`gradcheck.guidance.guided_sample`, a plain function; this module is
the job around it, which ``gradcheck sample`` calls and :func:`gradcheck.samples.save_samples` writes.
"""

from __future__ import annotations

import logging
import os

from .classifier import load_classifier
from .ddpm import load_pipeline
from .device import describe
from .guidance import GuidanceSettings, per_sample_seeds, sample_seeds
from .settings import JUDGE_EVERY
from .speed import to_classifier_layout

log = logging.getLogger(__name__)


def load_models(ddpm: str | os.PathLike, classifier: str | os.PathLike, judge: str | os.PathLike | None,
                device, unet_dtype: str, reference: str | os.PathLike | None = None):
    """(unet, scheduler, classifier, its metadata, judge or None, reference or None), frozen, each
    checked against the others."""
    unet, scheduler = load_pipeline(ddpm, device, unet_dtype)
    guide, meta = load_classifier(classifier, device)
    watchers = []
    for role, path in (("judge", judge), ("reference", reference)):
        watcher = None
        if path:
            watcher, watcher_meta = load_classifier(path, device)
            if watcher_meta["classes"] != meta["classes"]:
                raise ValueError(f"{role} {path} knows classes {watcher_meta['classes']}, "
                                 f"the classifier {classifier} {meta['classes']}")
        watchers.append(watcher)
    scorer, ref = watchers
    if meta["image_size"] != unet.config.sample_size:
        raise ValueError(f"classifier {classifier} was trained on {meta['image_size']} px images "
                         f"but the DDPM {ddpm} makes {unet.config.sample_size} px images")
    unet.requires_grad_(False)
    for model in (guide, scorer, ref):
        if model is not None:
            to_classifier_layout(model.requires_grad_(False), device)
    return unet, scheduler, guide, meta, scorer, ref


def sample_cell(ddpm, classifier, target_name: str, settings: dict, seeds: list[int], num_samples: int,
                batch_size: int, steps: int | None, device, unet_dtype: str, judge=None, judge_every: int = JUDGE_EVERY,
                reference=None):
    """Sample one cell: ``num_samples`` per sampling seed, guided as ``settings`` (GuidanceSettings' fields
    but the target, given by name). Returns (images in [-1, 1], the sample seeds, the trace, the record)."""
    unet, scheduler, guide, meta, scorer, ref = load_models(ddpm, classifier, judge, device, unet_dtype, reference)
    if target_name not in meta["classes"]:
        raise ValueError(f"unknown target class {target_name!r}; {classifier} knows: {', '.join(meta['classes'])}")
    guidance = GuidanceSettings(**settings, target=meta["classes"].index(target_name))
    timesteps = scheduler.config.num_train_timesteps
    if steps is not None and steps > timesteps:
        raise ValueError(f"--steps {steps} exceeds the {timesteps} training timesteps of {ddpm}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds repeats a seed: {seeds}")
    sample_ids = per_sample_seeds(seeds, num_samples)
    log.info("sampling %d images (%d per seed, seeds %s) with %s on %s",
             len(sample_ids), num_samples, seeds, guidance, describe(device))
    images, trace = sample_seeds(sample_ids, unet, scheduler, guide, guidance, batch_size, steps, device,
                                 judge=scorer, judge_every=judge_every, reference=ref)
    record = {"settings": {**vars(guidance), "adam": guidance.adam}, "target_name": target_name,
              "step": vars(guidance.step), "compute_per_sample": trace.compute_per_sample(),
              "ddpm": str(ddpm), "classifier": str(classifier), "judge": judge and str(judge),
              "reference": reference and str(reference),
              "judge_every": judge_every, "sampling_seeds": seeds, "samples_per_seed": num_samples,
              "num_inference_steps": steps or timesteps, "num_train_timesteps": timesteps,
              "unet_dtype": str(next(unet.parameters()).dtype).removeprefix("torch."),  # what ran ("auto" resolved)
              "device": describe(device)}
    return images, sample_ids, trace, record
