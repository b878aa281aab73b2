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

The training-free guidance methods since the paper are settings of the same step
(:class:`gradcheck.settings.GuidedStep`, docs/methods.md): where the classifier looks (x_t,
x0_hat through the UNet, or x0_hat detached), where the step lands (the mean, or x0_hat before
the posterior step), its length (eq. 2; s sigma_t^2 g; DPS's s g / |log p|), K passes with
re-noising between them, and gradient steps on x0 per pass. Every step counts its UNet
forwards and backwards and its classifier passes, and, given a reference classifier (the
noise-aware guide), the trace keeps the cosine between the applied direction and that
classifier's gradient at the same x_t: how informative the guidance is.

The sampler is a plain function of (unet, scheduler, classifier, noise, settings).
Every sample owns a ``torch.Generator``, so its noise, and so its result, does not
depend on which grid cell asked for it, nor, in float32, on the batch it is sampled in beyond
float32 rounding (about 1e-7: the UNet's kernels differ between batch sizes). A
bfloat16 UNet amplifies last-bit differences of the classifier's float32 matrix products
between batch sizes: there the batch moves samples by less than bfloat16 itself does
(tests/test_speed.py), so the workflow reruns a cell when its batch size changes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from .errors import GuidanceError
from .settings import JUDGE_EVERY, PAPER_BETAS, SEED_STRIDE, GuidanceSettings, parse_stabiliser
from .speed import attention_kernel, input_layout
from .trace_quantities import STORED


@dataclass
class SamplingTrace:
    """What the sampler saw at each step k (rows, K steps) for each sample (columns, B samples).

    Attributes:
        timesteps: (K,) the scheduler's timestep t of each step.
        cosine: (K, B) cos(g_k, g_{k-1}) of the applied direction, the paper's stability (eq. 5); NaN at k = 0.
        grad_norm: (K, B) ||raw classifier gradient||, before any stabiliser or normalisation.
        term_norm: (K, B) ||s * sigma_t^2 * g||, how far the guidance moved the mean.
        eps_cosine: (K, B) cos(applied g, eps); negative: along the denoising direction.
        judge_confidence: (K, B) the judge's p(y | clip(x0_hat)) at its steps; NaN elsewhere and without a judge.
        informativeness: (K, B) cos(applied direction, the reference classifier's grad log p(y | x_t)) at the
            judge's steps; NaN elsewhere and without a reference.
        staleness: (K, B) cos(applied direction, this step's raw gradient): 1 without a stabiliser.
        spread: (K, B) ||d||_1 / (sqrt(n) ||d||_2) of the applied direction d (:func:`direction_spread`).
        compute: name -> (K,) per sample: the method's UNet forwards and backwards and classifier forwards
            and backwards (the judge's and the reference's passes are the instruments', not counted).
    """
    timesteps: torch.Tensor
    cosine: torch.Tensor
    grad_norm: torch.Tensor
    term_norm: torch.Tensor
    eps_cosine: torch.Tensor
    judge_confidence: torch.Tensor
    informativeness: torch.Tensor
    staleness: torch.Tensor
    spread: torch.Tensor
    compute: dict[str, torch.Tensor] = field(default_factory=dict)

    PER_SAMPLE = STORED  # gradcheck.trace_quantities: each is a field above
    COMPUTE = ("unet_forward", "unet_backward", "classifier_forward", "classifier_backward")

    @classmethod
    def empty(cls, timesteps: torch.Tensor, batch: int) -> "SamplingTrace":
        return cls(timesteps, **{f: torch.full((len(timesteps), batch), float("nan")) for f in cls.PER_SAMPLE},
                   compute={name: torch.zeros(len(timesteps), dtype=torch.int64) for name in cls.COMPUTE})

    @classmethod
    def concat(cls, traces: list["SamplingTrace"]) -> "SamplingTrace":
        """Join traces of batches of the same run along the sample axis (counts are per sample: the same)."""
        return cls(traces[0].timesteps, **{f: torch.cat([getattr(t, f) for t in traces], dim=1)
                                           for f in cls.PER_SAMPLE}, compute=traces[0].compute)

    def __repr__(self) -> str:
        steps, samples = self.cosine.shape
        return (f"SamplingTrace({steps} steps x {samples} samples: {', '.join(self.PER_SAMPLE)}; "
                f"per sample {self.compute_per_sample() if self.compute else 'no compute counted'})")

    def compute_per_sample(self) -> dict[str, int]:
        """Each count summed over the steps: the cost of one sample."""
        return {name: int(self.compute[name].sum()) for name in self.COMPUTE}

    def count(self, k: int, **passes: int) -> None:
        """Add step k's passes (unet_forward=1, ...) to the compute counts."""
        for name, n in passes.items():
            self.compute[name][k] += n

    def record_judge(self, k: int, judge, x0_hat: torch.Tensor, target: int) -> None:
        """The watching judge's p(target | clip(x0_hat)) at step k."""
        seen = x0_hat.clamp(-1, 1).contiguous(memory_format=input_layout(judge))
        self.judge_confidence[k] = F.softmax(judge(seen).float(), dim=1)[:, target].cpu()

    def record_step(self, k: int, look: "Look", direction: torch.Tensor, shift: torch.Tensor,
                    grad_norm: torch.Tensor) -> None:
        """What step k's guidance did: the raw gradient's norm, the shift's, and the applied direction
        against eps (eps_cosine), against its own raw gradient (staleness) and over the pixels (spread)."""
        self.grad_norm[k] = grad_norm.cpu()
        self.term_norm[k] = per_sample_norm(shift).cpu()
        self.eps_cosine[k] = F.cosine_similarity(direction.flatten(1), look.eps.flatten(1), dim=1).cpu()
        self.staleness[k] = direction_cosine(direction, look.g).cpu()
        self.spread[k] = direction_spread(direction).cpu()

    def record_informativeness(self, k: int, reference, x: torch.Tensor, direction: torch.Tensor, target: int) -> None:
        """cos(applied direction, the watching reference classifier's grad log p(target | x_t)) at step k."""
        x_leaf = x.detach().requires_grad_(True)
        self.informativeness[k] = direction_cosine(direction, classifier_gradient(reference, x_leaf, x_leaf, target)).cpu()

    def record_stability(self, k: int, direction: torch.Tensor, previous: torch.Tensor | None) -> None:
        """Eq. 5: cos(this step's applied direction, the previous step's); NaN at the first."""
        if previous is not None:
            self.cosine[k] = F.cosine_similarity(direction.flatten(1), previous.flatten(1), dim=1).cpu()


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


def _alpha_bars(scheduler: DDPMScheduler, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    prev_t = int(scheduler.previous_timestep(t))
    abar_t = scheduler.alphas_cumprod[int(t)]
    return abar_t, scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)


def x0_coefficient(scheduler: DDPMScheduler, t: int) -> torch.Tensor:
    """The posterior mean's coefficient of x0, sqrt(abar_prev) beta_t / (1 - abar_t): moving x0_hat by d
    moves the mean of x_{t-1} by this times d (diffusers' ``pred_original_sample_coeff``)."""
    abar_t, abar_prev = _alpha_bars(scheduler, t)
    return abar_prev.sqrt() * (1 - abar_t / abar_prev) / (1 - abar_t)


def renoise(scheduler: DDPMScheduler, x_prev: torch.Tensor, t: int, generators: list[torch.Generator]) -> torch.Tensor:
    """Back from x_{t-1} to x_t: sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) z, alpha_t = abar_t / abar_prev
    (FreeDoM's time travel); z from each sample's own generator."""
    abar_t, abar_prev = _alpha_bars(scheduler, t)
    alpha = (abar_t / abar_prev).to(x_prev.device)
    z = randn_tensor(x_prev.shape, generator=generators, device=x_prev.device)
    return alpha.sqrt() * x_prev + (1 - alpha).sqrt() * z


def posterior_variance(scheduler: DDPMScheduler, t: int) -> torch.Tensor:
    """sigma_t^2 of the step t -> prev(t) with fixed small variance (respacing aware)."""
    abar_t, abar_prev = _alpha_bars(scheduler, t)
    beta_t = 1 - abar_t / abar_prev
    return ((1 - abar_prev) / (1 - abar_t) * beta_t).clamp(min=1e-20)


class AdamMoments:
    """Eq. 4 without a step size: per-element (hence per-sample) first and second moments.

    Without ``bias_correction`` the raw moments are used, m / (sqrt(v) + eps), as in the
    authors' code; with it, exactly ``torch.optim.Adam``'s step at lr 1.
    """

    def __init__(self, beta1: float = PAPER_BETAS[0], beta2: float = PAPER_BETAS[1], eps: float = 1e-8,
                 bias_correction: bool = True):
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
    kind, betas = parse_stabiliser(settings.stabiliser)
    if kind == "adam":
        return AdamMoments(*betas, settings.adam_eps, settings.bias_correction)
    if kind == "ema":
        return GradientEMA(*betas, settings.bias_correction)
    return None


def per_sample_norm(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(dim=1)


def normalise(g: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 2: rescale g to ||eps|| per sample; a zero gradient stays zero."""
    g_norm = per_sample_norm(g)
    factor = torch.where(g_norm > 0, per_sample_norm(eps) / g_norm.clamp(min=torch.finfo(g.dtype).tiny), 0.0)
    return g * factor.view(-1, *([1] * (g.dim() - 1)))


def direction_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample cosine of two directions at any scale; NaN where either is zero.

    F.cosine_similarity clamps each norm at 1e-8, so a saturated classifier's gradient (norms
    below 1e-8 are common late in sampling) would read as nearly orthogonal to itself. Dividing
    by the largest entry first keeps the norms at least 1 and the squares from underflowing.
    """
    (a, a_max), (b, b_max) = _max_scaled(a), _max_scaled(b)
    cos = F.cosine_similarity(a, b, dim=1)
    return torch.where(((a_max > 0) & (b_max > 0)).flatten(), cos, torch.nan)


def _max_scaled(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(each sample's flattened direction divided by its largest entry, that entry): norms of at least 1."""
    d = d.flatten(1)
    d_max = d.abs().amax(1, keepdim=True)
    return d / d_max.clamp(min=torch.finfo(d.dtype).tiny), d_max


def direction_spread(d: torch.Tensor) -> torch.Tensor:
    """Per sample ||d||_1 / (sqrt(n) ||d||_2): 1 when every entry has the same size (a sign vector), 1/sqrt(n)
    for one non-zero entry; NaN for a zero direction. Divided by the largest entry first, as in
    :func:`direction_cosine`, so that tiny late-sampling directions do not underflow."""
    unit, d_max = _max_scaled(d)
    spread = unit.abs().sum(1) / (unit.shape[1] ** 0.5 * unit.norm(dim=1))
    return torch.where(d_max.flatten() > 0, spread, torch.nan)


def confident_log_prob(logits: torch.Tensor, target: int) -> torch.Tensor:
    """log p(y | x) per sample, accurate where the classifier is sure.

    log_softmax rounds log p to exactly 0 once the target's logit leads by about 17 (float32),
    while its gradient, 1 - p and the other classes' p, stays non-zero. A step divided by |log p|
    (DPS) then explodes. Here -log p = log1p(sum_{j != y} exp(l_j - l_y)) where every other logit
    trails the target's, which keeps log p and its gradient in proportion down to exp(-87).
    """
    lead = logits - logits[:, target:target + 1]  # l_j - l_y; 0 at y
    others = torch.cat([lead[:, :target], lead[:, target + 1:]], dim=1)
    # both branches stay finite (hence the clamp), so the unused one's gradient is 0, never NaN
    sure = -torch.log1p(others.clamp(max=0).exp().sum(dim=1))
    return torch.where(others.amax(dim=1) < 0, sure, -torch.logsumexp(lead, dim=1))


def classifier_score_gradient(classifier, x_in: torch.Tensor, x_leaf: torch.Tensor, target: int,
                              objective: str = "log_prob", confident: bool = False
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_{x_leaf} of log p(y | x_in) or of the raw logit of y, that score per sample);
    x_in is x_leaf or a function of it. ``confident`` takes log p from :func:`confident_log_prob`
    (DPS divides by it); the paper's methods keep log_softmax, bit for bit."""
    logits = classifier(x_in.contiguous(memory_format=input_layout(classifier))).float()
    if objective != "log_prob":
        score = logits[:, target]
    else:
        score = confident_log_prob(logits, target) if confident else F.log_softmax(logits, dim=1)[:, target]
    (g,) = torch.autograd.grad(score.sum(), x_leaf)
    return g, score.detach()


def settings_score_gradient(classifier, x_in: torch.Tensor, x_leaf: torch.Tensor,
                            settings: GuidanceSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`classifier_score_gradient` with the settings' target and objective; DPS, which divides
    its step by the score, takes log p exact."""
    return classifier_score_gradient(classifier, x_in, x_leaf, settings.target, settings.objective,
                                     confident=settings.step.step_rule == "dps")


def classifier_gradient(classifier, x_in: torch.Tensor, x_leaf: torch.Tensor, target: int,
                        objective: str = "log_prob") -> torch.Tensor:
    """grad_{x_leaf} of log p(y | x_in) or of the raw logit of y; x_in is x_leaf or a function of it."""
    return classifier_score_gradient(classifier, x_in, x_leaf, target, objective)[0]


class Look(NamedTuple):
    """What one UNet forward and one classifier pass give a step."""
    eps: torch.Tensor                  # eps_theta(x_t, t), float32, detached
    g: torch.Tensor | None             # the raw gradient: w.r.t. x_t, or w.r.t. x0_hat on the detached path
    score: torch.Tensor | None         # log p(y | x_in) (or the logit) per sample
    x0: torch.Tensor | None = None     # the detached path's x0_hat (unclipped), where its gradient was taken


def x0_gradient(classifier, x0: torch.Tensor, settings: GuidanceSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad w.r.t. x0 of the classifier's score of x0, clipped as the settings say; the score): the
    detached path's gradient, which reaches no UNet."""
    x0_leaf = x0.detach().requires_grad_(True)
    x_in = x0_leaf.clamp(-1, 1) if settings.clip_x0 else x0_leaf  # clamp passes no gradient through clipped pixels
    return settings_score_gradient(classifier, x_in, x0_leaf, settings)


def noise_and_gradient(unet: UNet2DModel, classifier: torch.nn.Module | None, x: torch.Tensor, t,
                       alpha_bar_t: torch.Tensor, settings: GuidanceSettings) -> Look:
    """eps_theta(x_t, t) and the raw classifier gradient g (None without a classifier), where the
    settings' step looks: w.r.t. x_t of the classifier on x_t or on x0_hat(x_t) through the UNet, or
    w.r.t. a detached x0_hat.

    Through x0-hat, one UNet forward serves both the denoising step and the gradient. The UNet runs in
    the dtype of its parameters; eps and g come back in float32.
    """
    unet_dtype = next(unet.parameters()).dtype
    look = settings.step.look
    if classifier is None or look != "x0_hat":
        # inference_mode measured no faster than no_grad here; the flash attention kernel is
        # slow only in its backward (benchmarks/sampling_speed.py)
        with torch.no_grad():
            eps = unet(x.to(unet_dtype), t).sample.float()
        if classifier is None:
            return Look(eps, None, None)
        if look == "x0_detached":
            x0 = x0_estimate(x, eps, alpha_bar_t)
            return Look(eps, *x0_gradient(classifier, x0, settings), x0)
        x_leaf = x.detach().requires_grad_(True)
        return Look(eps, *settings_score_gradient(classifier, x_leaf, x_leaf, settings))
    x_leaf = x.detach().requires_grad_(True)
    with attention_kernel(x.device, unet_dtype):
        eps = unet(x_leaf.to(unet_dtype), t).sample.float()
    x0 = x0_estimate(x_leaf, eps, alpha_bar_t)
    if settings.clip_x0:  # clamp passes no gradient through the clipped pixels
        x0 = x0.clamp(-1, 1)
    return Look(eps.detach(), *settings_score_gradient(classifier, x0, x_leaf, settings))


def _check_finite(g: torch.Tensor, k: int, t) -> None:
    if not torch.isfinite(g).all():
        bad = (~torch.isfinite(g.flatten(1))).any(1).nonzero().flatten().tolist()
        raise GuidanceError(f"non-finite classifier gradient at sampling step {k} (timestep {int(t)}) for samples {bad}")


def guidance_shift(scheduler: DDPMScheduler, classifier, look: Look, t, settings: GuidanceSettings, stabilise,
                   k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The guided step's shift of x_{t-1}: (shift, applied direction, raw gradient norm, classifier passes).

    The direction is what the stabiliser and the step rule made of the gradient (its sum over the inner
    steps); the shift is the direction times the step's length, moved to the mean: s sigma_t^2 for eq. 2
    (after scaling g to ||eps||) and fixed steps, s / |score| for DPS. A step that lands on x0_hat moves it
    by that length over c_t (the posterior mean's x0 coefficient) and the inner steps share it, so one
    inner step moves the mean exactly as far as the paper's step does, and s means the same in every method.
    """
    step, g = settings.step, look.g
    _check_finite(g, k, t)
    grad_norm = per_sample_norm(g)
    sigma2 = posterior_variance(scheduler, int(t)).to(g.device)

    def direction_of(g):
        if stabilise is not None:
            g = stabilise(g)
        return normalise(g, look.eps) if step.step_rule == "eq2" else g

    if step.land == "mean":
        g = direction_of(g)
        if step.step_rule == "dps":  # DPS: s grad log p / |log p| per sample, on x_{t-1} (no sigma^2)
            length = settings.scale / look.score.abs().clamp(min=torch.finfo(g.dtype).tiny)
            return length.view(-1, *([1] * (g.dim() - 1))) * g, g, grad_norm, 1
        return settings.scale * sigma2 * g, g, grad_norm, 1
    # land on x0_hat: inner gradient steps from the detached x0_hat, each 1 / inner_steps of the length
    coefficient = x0_coefficient(scheduler, int(t)).to(g.device)
    length = settings.scale * sigma2 / coefficient / step.inner_steps
    x0, direction = look.x0, torch.zeros_like(g)
    for i in range(step.inner_steps):
        if i:
            g, _ = x0_gradient(classifier, x0, settings)
            _check_finite(g, k, t)
        d = direction_of(g)
        x0, direction = x0 + length * d, direction + d
    return coefficient * (x0 - look.x0), direction, grad_norm, step.inner_steps


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
    judge_every: int = JUDGE_EVERY,
    reference: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, SamplingTrace]:
    """Sample from x_T = ``noise`` with classifier guidance; returns images in [-1, 1] and the trace.

    ``num_inference_steps`` respaces the schedule (fewer steps for CPU runs); None uses
    every training step. ``judge``, a classifier that only watches, scores x0_hat at every
    ``judge_every``-th step (by default the workflow's ``sampling.judge_every``) and at the last (NaN
    between); it never changes the samples. At the same
    steps ``reference``, a noise-aware classifier that only watches too, gives the direction that the
    applied guidance is compared with (the trace's informativeness). The unet and classifiers should
    be in eval mode. The unet runs in the dtype of its parameters; everything else in float32.
    Classifiers get their inputs in the memory layout of their weights (``speed.to_classifier_layout``
    makes them channels-last, faster on CPU).
    """
    steps = scheduler.config.num_train_timesteps if num_inference_steps is None else num_inference_steps
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
    step = settings.step
    passes = step.recurrence if guided else 1

    trace = SamplingTrace.empty(scheduler.timesteps.cpu(), noise.shape[0])
    x, prev_g = noise, None
    for k, t in enumerate(tqdm(scheduler.timesteps, desc="sampling", file=sys.stderr, disable=not progress)):
        for r in range(passes):  # K > 1: re-noise x_{t-1} back to x_t and take the step again
            if r:
                with torch.no_grad():
                    x = renoise(scheduler, x_next, int(t), generators)
            look = noise_and_gradient(unet, classifier if guided else None, x, t, alphas_cumprod[t], settings)
            watch = r == passes - 1 and (k % judge_every == 0 or k == steps - 1)  # the instruments' steps
            trace.count(k, unet_forward=1, unet_backward=int(guided and step.look == "x0_hat"))
            with torch.no_grad():
                if judge is not None and watch:
                    trace.record_judge(k, judge, x0_estimate(x, look.eps, alphas_cumprod[t]), settings.target)
                x_next = scheduler.step(look.eps, t, x, generator=generators).prev_sample
            if not guided:
                continue
            # outside no_grad: inner steps on x0 take classifier gradients
            shift, g, grad_norm, classifier_passes = guidance_shift(scheduler, classifier, look, t, settings,
                                                                    stabilise, k)
            x_next = x_next + shift  # prev_sample = mu + sigma z, so this is mu~ + sigma z
            trace.count(k, classifier_forward=classifier_passes, classifier_backward=classifier_passes)
            trace.record_step(k, look, g, shift, grad_norm)
            if reference is not None and watch:
                trace.record_informativeness(k, reference, x, g, settings.target)
        if guided:  # eq. 5 between the last passes of consecutive steps
            trace.record_stability(k, g, prev_g)
            prev_g = g
        x = x_next
    return x.detach(), trace


def sample_seeds(seeds: list[int], unet, scheduler, classifier, settings: GuidanceSettings, batch_size: int,
                 num_inference_steps: int | None, device, progress: bool = True,
                 judge: torch.nn.Module | None = None, judge_every: int = JUDGE_EVERY,
                 reference: torch.nn.Module | None = None) -> tuple[torch.Tensor, SamplingTrace]:
    """Sample one image per seed in batches of ``batch_size``; the result does not depend on it. Images on the CPU."""
    images, trace = sample_batches(sample_generators(seeds), batch_size, unet, scheduler, classifier, settings,
                                   num_inference_steps, device, progress, judge, judge_every, reference)
    return images.cpu(), trace


def sample_shape(unet) -> tuple[int, ...]:
    """(channels, height, width) of one of the UNet's samples (sample_size is an int or a pair)."""
    size = unet.config.sample_size
    return (unet.config.in_channels, *((size, size) if isinstance(size, int) else size))


def sample_batches(generators: list[torch.Generator], batch_size: int, unet, scheduler, classifier,
                   settings: GuidanceSettings, num_inference_steps: int | None, device, progress: bool = True,
                   judge: torch.nn.Module | None = None, judge_every: int = JUDGE_EVERY,
                   reference: torch.nn.Module | None = None) -> tuple[torch.Tensor, SamplingTrace]:
    """One image per generator (each sample's own), in batches of ``batch_size``, on ``device``."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shape = sample_shape(unet)
    images, traces = [], []
    for i in range(0, len(generators), batch_size):
        gens = generators[i:i + batch_size]
        x, trace = guided_sample(unet, scheduler, classifier, initial_noise(gens, shape, device), settings, gens,
                                 num_inference_steps, progress, judge=judge, judge_every=judge_every,
                                 reference=reference)
        images.append(x)
        traces.append(trace)
    return torch.cat(images), SamplingTrace.concat(traces)
