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
from .speed import to_classifier_layout

log = logging.getLogger(__name__)


def load_models(ddpm: str | os.PathLike, classifier: str | os.PathLike, judge: str | os.PathLike | None,
                device, unet_dtype: str):
    """(unet, scheduler, classifier, its metadata, judge or None), frozen, each checked against the others."""
    unet, scheduler = load_pipeline(ddpm, device, unet_dtype)
    guide, meta = load_classifier(classifier, device)
    scorer = None
    if judge:
        scorer, judge_meta = load_classifier(judge, device)
        if judge_meta["classes"] != meta["classes"]:
            raise ValueError(f"judge {judge} knows classes {judge_meta['classes']}, "
                             f"the classifier {classifier} {meta['classes']}")
    if meta["image_size"] != unet.config.sample_size:
        raise ValueError(f"classifier {classifier} was trained on {meta['image_size']} px images "
                         f"but the DDPM {ddpm} makes {unet.config.sample_size} px images")
    for model in (unet, guide, scorer):
        if model is not None:
            model.requires_grad_(False)
    to_classifier_layout(guide, device)
    to_classifier_layout(scorer, device)
    return unet, scheduler, guide, meta, scorer


def sample_cell(ddpm, classifier, target_name: str, settings: dict, seeds: list[int], num_samples: int,
                batch_size: int, steps: int | None, device, unet_dtype: str, judge=None, judge_every: int = 1):
    """Sample one cell: ``num_samples`` per sampling seed, guided as ``settings`` (GuidanceSettings' fields
    but the target, given by name). Returns (images in [-1, 1], the sample seeds, the trace, the record)."""
    unet, scheduler, guide, meta, scorer = load_models(ddpm, classifier, judge, device, unet_dtype)
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
                                 judge=scorer, judge_every=judge_every)
    record = {"settings": {**vars(guidance), "adam": guidance.adam}, "target_name": target_name,
              "ddpm": str(ddpm), "classifier": str(classifier), "judge": judge and str(judge),
              "judge_every": judge_every, "sampling_seeds": seeds, "samples_per_seed": num_samples,
              "num_inference_steps": steps or timesteps, "num_train_timesteps": timesteps, "unet_dtype": unet_dtype,
              "device": describe(device)}
    return images, sample_ids, trace, record
