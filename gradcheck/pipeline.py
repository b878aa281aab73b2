"""``GuidedDDPMPipeline``: the guided sampler (:mod:`gradcheck.guidance`) as a diffusers pipeline.

A ``DiffusionPipeline`` of a ``UNet2DModel`` and a ``DDPMScheduler``, as diffusers' own
``DDPMPipeline`` (so ``save_pretrained`` / ``from_pretrained`` move it, and a trained workflow's
DDPM directory loads into it), whose call takes the classifier and the guidance settings and
returns the images with the sampler's :class:`~gradcheck.guidance.SamplingTrace`. Unguided
(scale 0) it samples what ``DDPMPipeline`` samples from the same generators.
"""

from __future__ import annotations

import numbers

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline, ImagePipelineOutput

from .guidance import SamplingTrace, sample_batches, sample_generators, sample_shape
from .settings import JUDGE_EVERY, GuidanceSettings

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class GuidedPipelineOutput(ImagePipelineOutput):
    """``images`` as ``DDPMPipeline`` gives them, and ``trace``, the sampler's per-step, per-sample trace."""
    trace: SamplingTrace | None = None


class GuidedDDPMPipeline(DiffusionPipeline):
    r"""Classifier-guided DDPM sampling with the paper's stabilisers and the training-free methods.

    The classifier is not a component of the pipeline: any ``torch.nn.Module`` mapping images in
    [-1, 1] to logits, passed per call (in eval mode, as the UNet).

    Example:

    ```py
    >>> pipe = GuidedDDPMPipeline.from_pretrained("results/models/ddpm", low_cpu_mem_usage=False)
    >>> out = pipe(classifier.eval(), target=3, method="mpgd", scale=10.0, stabiliser="adam", seeds=list(range(8)))
    >>> out.images[0].save("guided.png")  # out.trace: the per-step, per-sample gradient trace
    ```

    Any ``DDPMPipeline`` checkpoint loads (a directory or a Hub id, e.g. "google/ddpm-cat-256"), as
    does a trained workflow's DDPM directory; without ``accelerate`` pass ``low_cpu_mem_usage=False``.
    """

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    def __call__(
        self,
        classifier: torch.nn.Module | None = None,
        target: int = 0,
        method: str = "paper",
        scale: float = 0.0,
        *,
        x0_hat: bool | None = None,
        stabiliser: str = "none",
        num_inference_steps: int | None = None,
        seeds: list[int] | None = None,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        judge: torch.nn.Module | None = None,
        judge_every: int = JUDGE_EVERY,
        reference: torch.nn.Module | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        progress: bool = True,
        **guidance,
    ) -> GuidedPipelineOutput | tuple:
        r"""Sample with classifier guidance.

        Args:
            classifier: the guide, images in [-1, 1] -> logits; None samples unguided (scale must be 0).
            target: the class index y the guidance pushes towards.
            method: a name of :data:`gradcheck.settings.METHODS` (docs/methods.md).
            scale: the guidance scale s; 0 samples unguided.
            x0_hat: classify x0-hat (eq. 3) instead of x_t; None: True for every method but "paper"
                (they all classify x0-hat), False for "paper".
            stabiliser: "none", "adam" (eq. 4, the paper's betas), "adam<beta1>_<beta2>" (e.g. "adam0_0.8")
                or "ema<beta>" (e.g. "ema0.9").
            num_inference_steps: respaced sampling steps; None: every one of the scheduler's training
                timesteps (diffusers' default of 1,000 would exceed a DDPM with T = 400).
            seeds: one seed per sample, each its own ``torch.Generator`` (``guidance.sample_generators``),
                sampled in batches of ``batch_size``; float32 results do not depend on the batching.
            batch_size: the batch with ``seeds``; without ``seeds`` or ``generator``, the number of
                samples, from seeds 0 .. batch_size - 1.
            generator: instead of ``seeds``, one ``torch.Generator`` per sample (a list), sampled in one batch.
            judge, judge_every, reference: classifiers that only watch, as ``guidance.guided_sample`` takes them.
            output_type: "pil", "np" (NHWC in [0, 1]) or "pt" (NCHW in [0, 1]) as ``DDPMPipeline`` gives
                them, or "latent": the sampler's own NCHW tensor in [-1, 1].
            return_dict: return a :class:`GuidedPipelineOutput`; if False, ``(images, trace)``.
            progress: a progress bar on stderr (``set_progress_bar_config(disable=True)`` turns it off too).
            **guidance: any other field of :class:`gradcheck.settings.GuidanceSettings`, e.g. clip_x0,
                normalise, objective, recurrence, inner_steps, adam_eps, bias_correction.
        """
        settings = GuidanceSettings(scale=scale, target=target, x0_hat=method != "paper" if x0_hat is None else x0_hat,
                                    stabiliser=stabiliser, method=method, **guidance)  # refuses an unknown method, ...
        _check_call(settings, classifier, target, num_inference_steps, batch_size, output_type)
        generators, chunk = _generators(seeds, generator, batch_size)
        device = self._execution_device
        progress = progress and not getattr(self, "_progress_bar_config", {}).get("disable", False)
        if classifier is not None:  # before any UNet pass: a target the classifier has no logit for
            _check_target(classifier, target, self.unet, device)
        # no torch.no_grad here: the guidance takes gradients (the sampler disables them where it can)
        image, trace = sample_batches(generators, chunk, self.unet, self.scheduler, classifier, settings,
                                      num_inference_steps, device, progress, judge, judge_every, reference)

        if output_type != "latent":  # as DDPMPipeline converts
            image = (image / 2 + 0.5).clamp(0, 1)
            if output_type != "pt":
                image = image.cpu().permute(0, 2, 3, 1).numpy()
                image = self.numpy_to_pil(image) if output_type == "pil" else image
        self.maybe_free_model_hooks()
        if not return_dict:
            return image, trace
        return GuidedPipelineOutput(images=image, trace=trace)


def _check_call(settings: GuidanceSettings, classifier, target, num_inference_steps, batch_size, output_type):
    """Refuse, naming the argument, what the sampler would otherwise fail on after a UNet pass or take silently."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"unknown output_type {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")
    if settings.scale != 0 and classifier is None:
        raise ValueError(f"a guidance scale of {settings.scale:g} needs a classifier: pass classifier=, "
                         "or scale=0 to sample unguided")
    if settings.scale < 0:
        raise ValueError(f"scale must be 0 or positive (0 samples unguided), got {settings.scale:g}")
    if isinstance(target, bool) or not isinstance(target, numbers.Integral) or target < 0:
        raise ValueError(f"target must be a class index 0, 1, ..., got {target!r}")
    if num_inference_steps is not None and num_inference_steps <= 0:
        raise ValueError(f"num_inference_steps must be positive or None (every step), got {num_inference_steps}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


def _generators(seeds, generator, batch_size) -> tuple[list[torch.Generator], int]:
    """(one generator per sample, the batch): from ``seeds``, from ``generator`` (one per sample, one batch), or
    seeds 0 .. batch_size - 1."""
    if seeds is not None and generator is not None:
        raise ValueError("pass seeds or generator, not both")
    if seeds is not None:
        if len(seeds) == 0:
            raise ValueError("seeds is empty: give at least one seed")
        return sample_generators(list(seeds)), batch_size
    if generator is None:
        return sample_generators(list(range(batch_size))), batch_size
    if isinstance(generator, torch.Generator):
        if batch_size != 1:
            raise ValueError("the guided sampler needs one torch.Generator per sample: pass generator as a "
                             f"list of {batch_size}, or seeds")
        generator = [generator]
    generators = list(generator)
    if batch_size not in (1, len(generators)):
        raise ValueError(f"{len(generators)} generators for a batch_size of {batch_size}")
    return generators, len(generators)


def _check_target(classifier, target: int, unet, device) -> None:
    """Refuse a target the classifier has no logit for, with one small forward pass and no UNet pass."""
    with torch.no_grad():
        classes = classifier(torch.zeros(2, *sample_shape(unet), device=device)).shape[-1]
    if target >= classes:
        raise ValueError(f"target {target} is not a class of this classifier: it has {classes} (0 .. {classes - 1})")
