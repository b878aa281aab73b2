"""Classifier-guided DDPM sampling with the paper's stabilisers, and its gradient trace.

Equations (numbers as in docs/method.md):
  (1) mu~ = mu_theta(x_t, t) + s * sigma_t^2 * g,   g = grad_{x_t} log p_phi(y | x_in)
  (2) g <- g * ||eps|| / ||g||                       per sample (``normalise``)
  (3) x_in = x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)   (or x_in = x_t)
  (4) ADAM on the raw g, before (2): g <- m_hat / (sqrt(v_hat) + e)
      or, as a further stabiliser, an EMA (momentum) of g with decay beta: g <- m_hat
  (5) cosine(g_k, g_{k-1}) per sample, for every sampling step k

The settings that the authors' public code makes differently from the equations are options, so that a study can measure each: the raw target logit as the
objective instead of log p; x0_hat clipped to [-1, 1] as diffusers' ``pred_original_sample``
(the gradient then flows only through unclipped pixels); no normalisation (2); ADAM's eps
and moments without bias correction. The UNet runs in the dtype of its parameters (cast it
to bfloat16 or float16 for reduced-precision sampling); the classifier gradient, the
scheduler step and the guidance arithmetic stay in float32.

Beside (5) the trace keeps diagnostics per step and sample: the raw gradient norm, the
norm of the mean shift, cos(applied direction, eps), and, when a judge classifier is
given, its confidence p(y | x0_hat) on the clipped x0 estimate.

The sampler is a plain function of (unet, scheduler, classifier, noise, settings).
Every sample owns a ``torch.Generator``, so its noise, and so its result, does not
depend on which grid cell asked for it, nor, in float32, on the batch it is sampled in. A
bfloat16 UNet amplifies last-bit differences of the classifier's float32 matrix products
between batch sizes: there the batch moves samples by less than bfloat16 itself does
(tests/test_speed.py), so the workflow reruns a cell when its batch size changes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from .errors import GuidanceError
from .settings import SEED_STRIDE, GuidanceSettings, parse_stabiliser
from .speed import attention_kernel, input_layout


@dataclass
class SamplingTrace:
    """Per step k (rows) and per sample (columns)."""
    timesteps: torch.Tensor         # (K,)
    cosine: torch.Tensor            # (K, B): cos(g_k, g_{k-1}) of the applied direction; NaN at k = 0
    grad_norm: torch.Tensor         # (K, B): ||raw classifier gradient||
    term_norm: torch.Tensor         # (K, B): ||s * sigma_t^2 * g||, the shift of the mean
    eps_cosine: torch.Tensor        # (K, B): cos(applied g, eps); negative = along the denoising direction
    judge_confidence: torch.Tensor  # (K, B): judge's p(y | clip(x0_hat)); NaN without a judge

    PER_SAMPLE = ("cosine", "grad_norm", "term_norm", "eps_cosine", "judge_confidence")

    @classmethod
    def empty(cls, timesteps: torch.Tensor, batch: int) -> "SamplingTrace":
        return cls(timesteps, *(torch.full((len(timesteps), batch), float("nan")) for _ in cls.PER_SAMPLE))

    @classmethod
    def concat(cls, traces: list["SamplingTrace"]) -> "SamplingTrace":
        """Join traces of batches of the same run along the sample axis."""
        return cls(traces[0].timesteps, *(torch.cat([getattr(t, f) for t in traces], dim=1)
                                          for f in cls.PER_SAMPLE))


def per_sample_seeds(sampling_seeds: list[int], num_samples: int) -> list[int]:
    """Generator seeds of ``num_samples`` samples for each sampling seed, seed-major."""
    if num_samples > SEED_STRIDE:
        raise ValueError(f"at most {SEED_STRIDE} samples per sampling seed, got {num_samples}")
    if any(s < 0 for s in sampling_seeds):
        raise ValueError(f"sampling seeds must be non-negative, got {sampling_seeds}")
    return [s * SEED_STRIDE + i for s in sampling_seeds for i in range(num_samples)]


def sample_generators(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per sample: CPU and GPU runs then start from the same noise."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def initial_noise(generators: list[torch.Generator], shape: tuple[int, ...], device) -> torch.Tensor:
    """x_T for each sample, drawn exactly as ``DDPMPipeline`` draws it."""
    return randn_tensor((len(generators), *shape), generator=generators, device=torch.device(device))


def x0_estimate(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """Eq. 3: the one-step estimate of the clean image (unclipped, so gradients flow)."""
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def posterior_variance(scheduler: DDPMScheduler, t: int) -> torch.Tensor:
    """sigma_t^2 of the step t -> prev(t) with fixed small variance (respacing aware)."""
    prev_t = int(scheduler.previous_timestep(t))
    abar_t = scheduler.alphas_cumprod[int(t)]
    abar_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)
    beta_t = 1 - abar_t / abar_prev
    return ((1 - abar_prev) / (1 - abar_t) * beta_t).clamp(min=1e-20)


class AdamMoments:
    """Eq. 4 without a step size: per-element (hence per-sample) first and second moments.

    Without ``bias_correction`` the raw moments are used, m / (sqrt(v) + eps), as in the
    authors' code; with it, exactly ``torch.optim.Adam``'s step at lr 1.
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, bias_correction: bool = True):
        self.beta1, self.beta2, self.eps, self.bias_correction = beta1, beta2, eps, bias_correction
        self.m = self.v = None
        self.k = 0

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        if self.m is None:
            self.m, self.v = torch.zeros_like(g), torch.zeros_like(g)
        self.k += 1
        self.m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        if not self.bias_correction:
            return self.m / (self.v.sqrt() + self.eps)
        m_hat = self.m / (1 - self.beta1 ** self.k)
        v_hat = self.v / (1 - self.beta2 ** self.k)
        return m_hat / (v_hat.sqrt() + self.eps)


class GradientEMA:
    """Momentum stabiliser: exponential moving average of g, per element.

    The correction 1 / (1 - beta^k) is the same for every sample, so with eq. 2 it cancels;
    without normalisation it scales the first steps' guidance up (the authors' code omits it).
    """

    def __init__(self, beta: float, bias_correction: bool = True):
        self.beta, self.bias_correction, self.m, self.k = beta, bias_correction, None, 0

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        if self.m is None:
            self.m = torch.zeros_like(g)
        self.k += 1
        self.m.mul_(self.beta).add_(g, alpha=1 - self.beta)
        return self.m / (1 - self.beta ** self.k) if self.bias_correction else self.m.clone()


def make_stabiliser(settings: GuidanceSettings):
    """The stateful map applied to each step's raw gradient, or None."""
    kind, beta = parse_stabiliser(settings.stabiliser)
    if kind == "adam":
        return AdamMoments(settings.beta1, settings.beta2, settings.adam_eps, settings.bias_correction)
    if kind == "ema":
        return GradientEMA(beta, settings.bias_correction)
    return None


def per_sample_norm(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(dim=1)


def normalise(g: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 2: rescale g to ||eps|| per sample; a zero gradient stays zero."""
    g_norm = per_sample_norm(g)
    factor = torch.where(g_norm > 0, per_sample_norm(eps) / g_norm.clamp(min=torch.finfo(g.dtype).tiny), 0.0)
    return g * factor.view(-1, *([1] * (g.dim() - 1)))


def classifier_gradient(classifier, x_in: torch.Tensor, x_leaf: torch.Tensor, target: int,
                        objective: str = "log_prob") -> torch.Tensor:
    """grad_{x_leaf} of log p(y | x_in) or of the raw logit of y; x_in is x_leaf or a function of it."""
    logits = classifier(x_in.contiguous(memory_format=input_layout(classifier))).float()
    score = F.log_softmax(logits, dim=1)[:, target] if objective == "log_prob" else logits[:, target]
    (g,) = torch.autograd.grad(score.sum(), x_leaf)
    return g


def noise_and_gradient(unet: UNet2DModel, classifier: torch.nn.Module | None, x: torch.Tensor, t,
                       alpha_bar_t: torch.Tensor, settings: GuidanceSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """eps_theta(x_t, t) and the raw classifier gradient g w.r.t. x_t (None without a classifier).

    With x0-hat, one UNet forward serves both the denoising step and, through x0_hat, the
    gradient. The UNet runs in the dtype of its parameters; eps and g come back in float32.
    """
    unet_dtype = next(unet.parameters()).dtype
    if classifier is None or not settings.x0_hat:
        # inference_mode measured no faster than no_grad here; the flash attention kernel is
        # slow only in its backward (benchmarks/sampling_speed.py)
        with torch.no_grad():
            eps = unet(x.to(unet_dtype), t).sample.float()
        if classifier is None:
            return eps, None
        x_leaf = x.detach().requires_grad_(True)
        return eps, classifier_gradient(classifier, x_leaf, x_leaf, settings.target, settings.objective)
    x_leaf = x.detach().requires_grad_(True)
    with attention_kernel(x.device, unet_dtype):
        eps = unet(x_leaf.to(unet_dtype), t).sample.float()
    x0 = x0_estimate(x_leaf, eps, alpha_bar_t)
    if settings.clip_x0:  # clamp passes no gradient through the clipped pixels
        x0 = x0.clamp(-1, 1)
    return eps.detach(), classifier_gradient(classifier, x0, x_leaf, settings.target, settings.objective)


def guided_sample(
    unet: UNet2DModel,
    scheduler: DDPMScheduler,
    classifier: torch.nn.Module | None,
    noise: torch.Tensor,
    settings: GuidanceSettings,
    generators: list[torch.Generator],
    num_inference_steps: int | None = None,
    progress: bool = True,
    judge: torch.nn.Module | None = None,
    judge_every: int = 1,
) -> tuple[torch.Tensor, SamplingTrace]:
    """Sample from x_T = ``noise`` with classifier guidance; returns images in [-1, 1] and the trace.

    ``num_inference_steps`` respaces the schedule (fewer steps for CPU runs); None uses
    every training step. ``judge``, a classifier that only watches, scores x0_hat at every
    ``judge_every``-th step and at the last (NaN between); it never changes the samples. The
    unet and classifiers should be in eval mode. The unet runs in the dtype of its parameters;
    everything else in float32. Classifiers get their inputs in the memory layout of their
    weights (``speed.to_classifier_layout`` makes them channels-last, faster on CPU).
    """
    steps = num_inference_steps or scheduler.config.num_train_timesteps
    if steps <= 0:
        raise ValueError(f"num_inference_steps must be positive, got {steps}")
    if judge_every <= 0:
        raise ValueError(f"judge_every must be positive, got {judge_every}")
    if len(generators) != noise.shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {noise.shape[0]}")
    guided = settings.scale != 0
    if guided and classifier is None:
        raise ValueError("a guidance scale other than 0 needs a classifier")
    scheduler.set_timesteps(steps, device=noise.device)
    alphas_cumprod = scheduler.alphas_cumprod.to(noise.device)
    stabilise = make_stabiliser(settings)

    trace = SamplingTrace.empty(scheduler.timesteps.cpu(), noise.shape[0])
    x, prev_g = noise, None
    for k, t in enumerate(tqdm(scheduler.timesteps, desc="sampling", file=sys.stderr, disable=not progress)):
        eps, g = noise_and_gradient(unet, classifier if guided else None, x, t, alphas_cumprod[t], settings)

        with torch.no_grad():
            if judge is not None and (k % judge_every == 0 or k == steps - 1):
                x0_seen = x0_estimate(x, eps, alphas_cumprod[t]).clamp(-1, 1).contiguous(memory_format=input_layout(judge))
                trace.judge_confidence[k] = F.softmax(judge(x0_seen).float(), dim=1)[:, settings.target].cpu()
            x_next = scheduler.step(eps, t, x, generator=generators).prev_sample
            if guided:
                if not torch.isfinite(g).all():
                    bad = (~torch.isfinite(g.flatten(1))).any(1).nonzero().flatten().tolist()
                    raise GuidanceError(f"non-finite classifier gradient at sampling step {k} "
                                        f"(timestep {int(t)}) for samples {bad}")
                trace.grad_norm[k] = per_sample_norm(g).cpu()
                if stabilise is not None:
                    g = stabilise(g)
                if settings.normalise:
                    g = normalise(g, eps)
                term = settings.scale * posterior_variance(scheduler, int(t)).to(x.device) * g
                x_next = x_next + term  # prev_sample = mu + sigma z, so this is mu~ + sigma z
                trace.term_norm[k] = per_sample_norm(term).cpu()
                trace.eps_cosine[k] = F.cosine_similarity(g.flatten(1), eps.flatten(1), dim=1).cpu()
                if prev_g is not None:
                    trace.cosine[k] = F.cosine_similarity(g.flatten(1), prev_g.flatten(1), dim=1).cpu()
                prev_g = g
        x = x_next
    return x.detach(), trace


def sample_seeds(seeds: list[int], unet, scheduler, classifier, settings: GuidanceSettings, batch_size: int,
                 num_inference_steps: int | None, device, progress: bool = True,
                 judge: torch.nn.Module | None = None, judge_every: int = 1) -> tuple[torch.Tensor, SamplingTrace]:
    """Sample one image per seed in batches of ``batch_size``; the result does not depend on it."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    images, traces = [], []
    for i in range(0, len(seeds), batch_size):
        gens = sample_generators(seeds[i:i + batch_size])
        noise = initial_noise(gens, shape, device)
        x, trace = guided_sample(unet, scheduler, classifier, noise, settings, gens, num_inference_steps, progress,
                                 judge=judge, judge_every=judge_every)
        images.append(x.cpu())
        traces.append(trace)
    return torch.cat(images), SamplingTrace.concat(traces)
