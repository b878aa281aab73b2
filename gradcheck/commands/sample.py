"""Stage 3, guided sampling: one grid cell of one training replicate per call."""

from __future__ import annotations

from ..settings import METHODS, OBJECTIVES, UNET_DTYPES, GuidanceSettings, SamplingSettings
from . import DEVICE_HELP, boolean, command, option, positive, steps

GUIDANCE, SAMPLING = GuidanceSettings, SamplingSettings


@command("sample", help="guided sampling of one grid cell")
@option("--ddpm", required=True, help="DDPMPipeline directory from train-ddpm")
@option("--classifier", required=True, help="guiding classifier (.pt)")
@option("--target", required=True, help="target class name, e.g. baseball")
@option("--scale", type=float, required=True, help="guidance scale s (0: unguided)")
@option("--x0-hat", type=boolean, setting=(GUIDANCE, "x0_hat"), help="classify the x0 estimate (eq. 3)")
@option("--stabiliser", setting=(GUIDANCE, "stabiliser"),
        help="none | adam (eq. 4, betas 0.9, 0.999) | adam<beta1>_<beta2>, e.g. adam0_0.8 | ema<beta>, e.g. ema0.9")
@option("--method", choices=list(METHODS), setting=(GUIDANCE, "method"),
        help="the guided step (docs/methods.md): paper is eq. 1-3, on x_t or x0-hat as --x0-hat says")
@option("--recurrence", type=positive, help="passes per step, re-noising between them (default: the method's)")
@option("--inner-steps", type=positive, help="gradient steps on x0-hat per pass (default: the method's)")
@option("--judge", help="classifier (.pt) that scores x0_hat while sampling, never guiding")
@option("--reference", help="noise-aware classifier (.pt) whose gradient at x_t the applied guidance is compared "
                            "with at the judge's steps (informativeness); it never guides")
@option("--judge-every", type=positive, setting=(SAMPLING, "judge_every"),
        help="the judge scores every this many steps and the last (its cost is a classifier forward)")
@option("--num-samples", type=positive, setting=(SAMPLING, "num_samples"), help="samples per sampling seed")
@option("--seeds", type=int, nargs="+", setting=(SAMPLING, "seeds"),
        help="sampling seeds; sample i of seed s uses generator seed s*1000000+i, in every cell")
@option("--batch-size", type=positive, setting=(SAMPLING, "batch_size"),
        help="does not change float32 samples (a bfloat16 UNet's rounding: a little)")
@option("--steps", type=steps, setting=(SAMPLING, "steps"), help="respaced sampling steps, or 'all' (default): every one of the T")
@option("--objective", choices=OBJECTIVES, setting=(GUIDANCE, "objective"),
        help="differentiate log p(y | x) (eq. 1) or the raw target logit (the authors' code)")
@option("--clip-x0", type=boolean, setting=(GUIDANCE, "clip_x0"),
        help="classify clip(x0_hat, -1, 1) as diffusers' pred_original_sample (the authors' code)")
@option("--normalise", type=boolean, setting=(GUIDANCE, "normalise"), help="rescale g to ||eps|| per sample (eq. 2)")
@option("--adam-eps", type=float, setting=(GUIDANCE, "adam_eps"), help="ADAM's eps (the authors' code: 1e-4)")
@option("--bias-correction", type=boolean, setting=(GUIDANCE, "bias_correction"),
        help="bias-correct ADAM's and the EMA's moments (the authors' code: false)")
@option("--unet-dtype", choices=UNET_DTYPES, setting=(SAMPLING, "unet_dtype"),
        help="precision of the UNet while sampling; the classifier gradient stays float32")
@option("--out", required=True, help="output .npz: images, seeds and the gradient trace")
@option("--device", default="auto", help=DEVICE_HELP)
def sample(a):
    from ..cell import sample_cell
    from ..device import pick_device
    from ..metrics import uint8_images
    from ..samples import save_samples

    settings = dict(scale=a.scale, x0_hat=a.x0_hat, stabiliser=a.stabiliser, adam_eps=a.adam_eps,
                    bias_correction=a.bias_correction, objective=a.objective, clip_x0=a.clip_x0, normalise=a.normalise,
                    method=a.method, recurrence=a.recurrence, inner_steps=a.inner_steps)
    images, seeds, trace, record = sample_cell(
        a.ddpm, a.classifier, a.target, settings, a.seeds, a.num_samples, a.batch_size, a.steps,
        pick_device(a.device), a.unet_dtype, judge=a.judge, judge_every=a.judge_every, reference=a.reference)
    save_samples(a.out, uint8_images(images), seeds, a.num_samples, trace.timesteps.numpy(),
                 {name: getattr(trace, name).numpy() for name in trace.PER_SAMPLE}, record,
                 {name: count.numpy() for name, count in trace.compute.items()})
