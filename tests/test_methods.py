"""The training-free guidance methods as settings of one guided step (gradcheck.guidance).

Each preset is checked against an independent implementation written from its method's update
rule (the reference loops below: UG's eps correction for the steps that land on x0-hat, DPS's
step on x_{t-1}, FreeDoM's time travel), and each gradient path against finite differences.
"""

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from conftest import tiny_unet
from gradcheck.guidance import (AdamMoments, GuidanceSettings, confident_log_prob, direction_cosine, guided_sample,
                                initial_noise, noise_and_gradient, sample_generators)
from gradcheck.settings import METHODS, GuidedStep

SHAPE = (3, 8, 8)
SEEDS = [0, 1, 2]
STEPS = 5


class SmallConvNet(torch.nn.Module):
    """A nonlinear three-class classifier with random weights: its gradient changes with x."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Tanh(),
                                       torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(24, 3))
        self.eval().requires_grad_(False)

    def forward(self, x):
        return self.net(x) * 3.0


@pytest.fixture
def scheduler():
    # clip_sample off: the reference loops land on x0-hat through the scheduler's own posterior step,
    # which would otherwise clip the moved x0-hat (GradCheck moves the mean after the step's clipping)
    return DDPMScheduler(num_train_timesteps=100, beta_schedule="linear", clip_sample=False)


def _sample(unet, scheduler, clf, settings, steps=STEPS, **kwargs):
    gens = sample_generators(SEEDS)
    return guided_sample(unet, scheduler, clf, initial_noise(gens, SHAPE, "cpu"), settings, gens, steps,
                         progress=False, **kwargs)


# --- the reference implementations, one update rule each ----------------------------------------


def _bars(scheduler, t):
    prev = int(scheduler.previous_timestep(t))
    abar = scheduler.alphas_cumprod[int(t)]
    abar_prev = scheduler.alphas_cumprod[prev] if prev >= 0 else torch.tensor(1.0)
    beta = 1 - abar / abar_prev
    return abar, abar_prev, beta, (1 - abar_prev) / (1 - abar) * beta  # ..., sigma_t^2


def _log_p(clf, x, target):
    return torch.log_softmax(clf(x), dim=1)[:, target]


def _to_norm_of(g, ref):
    return g * (ref.flatten(1).norm(dim=1) / g.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)


def reference_sample(unet, scheduler, clf, rule, s, target, steps=STEPS, recurrence=1, inner_steps=1, adam=False):
    """Sample SEEDS from each method's update rule as its paper writes it.

    paper (x0-hat): mu~ = mu + s sigma^2 g, g = grad_x log p(y | clip(x0_hat(x))) scaled to ||eps||.
    mpgd / backward: x0' = x0_hat + lambda grad_{x0} log p(y | clip(x0)) (normalised), ``inner_steps`` times
        from a detached x0_hat, lambda = s sigma^2 / (c_t inner_steps); then Universal Guidance's correction
        eps' = (x_t - sqrt(abar) x0') / sqrt(1 - abar) and the scheduler's step with eps'.
    dps: x_{t-1} = DDPM step + s grad_x log p(y | x0_hat(x)) / |log p|.
    recurrence (FreeDoM): x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) z, and the step again.
    """
    gens = sample_generators(SEEDS)
    x = initial_noise(gens, SHAPE, "cpu")
    scheduler.set_timesteps(steps)
    moments = AdamMoments() if adam else None
    for t in scheduler.timesteps:
        abar, abar_prev, beta, sigma2 = _bars(scheduler, t)
        for r in range(recurrence):
            if r:
                alpha = abar / abar_prev
                x = alpha.sqrt() * x_prev + (1 - alpha).sqrt() * randn_tensor(x.shape, generator=gens)
            if rule in ("paper", "dps"):
                leaf = x.detach().requires_grad_(True)
                eps = unet(leaf, t).sample
                x0 = ((leaf - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
                lp = _log_p(clf, x0, target)
                (g,) = torch.autograd.grad(lp.sum(), leaf)
                eps = eps.detach()
                g = moments(g) if adam else g
                x_prev = scheduler.step(eps, t, x, generator=gens).prev_sample
                if rule == "paper":
                    x_prev = x_prev + s * sigma2 * _to_norm_of(g, eps)
                else:
                    x_prev = x_prev + s * g / lp.detach().abs().view(-1, 1, 1, 1)
            else:  # mpgd, backward: on a detached x0-hat
                with torch.no_grad():
                    eps = unet(x, t).sample
                x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
                c_t = abar_prev.sqrt() * beta / (1 - abar)
                for _ in range(inner_steps):
                    leaf = x0.detach().requires_grad_(True)
                    (g,) = torch.autograd.grad(_log_p(clf, leaf.clamp(-1, 1), target).sum(), leaf)
                    g = moments(g) if adam else g
                    x0 = x0 + s * sigma2 / (c_t * inner_steps) * _to_norm_of(g, eps)
                eps_moved = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
                x_prev = scheduler.step(eps_moved, t, x, generator=gens).prev_sample
        x = x_prev
    return x


CASES = {  # preset -> (reference rule, recurrence, inner steps, scale)
    "paper": ("paper", 1, 1, 4.0),
    "mpgd": ("mpgd", 1, 1, 4.0),
    "dps": ("dps", 1, 1, 0.05),
    "freedom": ("paper", 2, 1, 4.0),
    "backward": ("mpgd", 1, 4, 4.0),
}


@pytest.mark.parametrize("adam", [False, True])
@pytest.mark.parametrize("method", list(CASES))
def test_each_method_equals_its_update_rule_written_out(scheduler, method, adam):
    rule, recurrence, inner, scale = CASES[method]
    unet, clf = tiny_unet(), SmallConvNet()
    settings = GuidanceSettings(scale=scale, target=1, x0_hat=True, method=method,
                                stabiliser="adam" if adam else "none")
    assert (settings.step.recurrence, settings.step.inner_steps) == (recurrence, inner)
    ours, _ = _sample(unet, scheduler, clf, settings)
    expected = reference_sample(unet, scheduler, clf, rule, scale, 1, recurrence=recurrence, inner_steps=inner,
                                adam=adam)
    unguided, _ = _sample(unet, scheduler, None, GuidanceSettings())
    assert (ours - unguided).abs().max() > 1e-3  # the guidance moved the samples
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_methods_differ_from_each_other(scheduler):
    unet, clf = tiny_unet(), SmallConvNet()
    images = {m: _sample(unet, scheduler, clf, GuidanceSettings(scale=4.0, target=1, x0_hat=True, method=m))[0]
              for m in ("paper", "mpgd", "freedom", "backward")}
    names = list(images)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (images[a] - images[b]).abs().max() > 1e-4, (a, b)


def test_recurrence_and_inner_steps_override_the_preset():
    settings = GuidanceSettings(scale=1.0, x0_hat=True, method="freedom", recurrence=3)
    assert settings.step == GuidedStep(look="x0_hat", recurrence=3)
    assert GuidanceSettings(x0_hat=True, method="backward", inner_steps=2).step.inner_steps == 2
    assert GuidanceSettings(x0_hat=False).step == GuidedStep(look="x_t")
    assert GuidanceSettings(x0_hat=True, normalise=False).step == GuidedStep(look="x0_hat", step_rule="fixed")


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="langevin"), "unknown method 'langevin'"),
    (dict(method="mpgd", recurrence=-1), "recurrence must be a whole number, 1 or more, got -1"),
    (dict(method="mpgd", recurrence=1.5), "recurrence must be a whole number"),
    (dict(method="backward", inner_steps=0), "inner_steps must be a whole number"),
    (dict(method="mpgd", x0_hat=False), "method 'mpgd' classifies x0-hat"),
    (dict(method="paper", inner_steps=3), "inner_steps above 1 optimise x0-hat"),
    (dict(scale="10"), "scale must be a number, got '10'"),
])
def test_bad_method_settings_are_refused_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GuidanceSettings(**({"x0_hat": True} | kwargs))


# --- gradient paths -----------------------------------------------------------------------------


def test_x0_hat_path_gradient_matches_finite_differences_through_the_unet(scheduler):
    """grad_x log p(y | x0_hat(x)) with the UNet's Jacobian: a central difference along a direction."""
    unet, clf = tiny_unet().double(), SmallConvNet().double()
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.tensor(60)
    abar = scheduler.alphas_cumprod[t].double()
    settings = GuidanceSettings(scale=1.0, target=2, x0_hat=True, clip_x0=False)
    g = noise_and_gradient(unet, clf, x, t, abar, settings).g

    def f(x):
        with torch.no_grad():
            x0 = (x - (1 - abar).sqrt() * unet(x, t).sample) / abar.sqrt()
            return _log_p(clf, x0, 2).sum()

    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    h = 1e-4
    numeric = (f(x + h * v) - f(x - h * v)) / (2 * h)
    # eps comes back in float32 (the sampler's convention), so agreement is to float32 precision
    assert math.isclose(float((g * v).sum()), float(numeric), rel_tol=1e-4)
    # and it is not the gradient without the UNet's Jacobian
    detached = noise_and_gradient(unet, clf, x, t, abar, GuidanceSettings(scale=1.0, target=2, x0_hat=True,
                                                                          clip_x0=False, method="mpgd")).g
    assert not math.isclose(float((detached / abar.sqrt() * v).sum()), float(numeric), rel_tol=1e-2)


def test_detached_path_sends_no_gradient_through_the_unet(scheduler):
    unet, clf = tiny_unet(), SmallConvNet()
    backwards = []  # the UNet's first layer: a gradient through the UNet passes it
    unet.conv_in.register_full_backward_hook(lambda *_: backwards.append(1))
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3))
    t = torch.tensor(60)
    abar = scheduler.alphas_cumprod[t]
    look = noise_and_gradient(unet, clf, x, t, abar, GuidanceSettings(scale=1.0, target=0, x0_hat=True, method="mpgd"))
    assert not backwards and not look.eps.requires_grad
    # its gradient is the classifier's w.r.t. x0-hat itself: finite differences in x0
    x0 = look.x0.double()
    v = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    clf64 = SmallConvNet().double()
    f = lambda z: _log_p(clf64, z.clamp(-1, 1), 0).sum()  # noqa: E731
    numeric = (f(x0 + 1e-4 * v) - f(x0 - 1e-4 * v)) / 2e-4
    assert math.isclose(float((look.g.double() * v).sum()), float(numeric), rel_tol=1e-3)
    noise_and_gradient(unet, clf, x, t, abar, GuidanceSettings(scale=1.0, target=0, x0_hat=True))
    assert backwards  # the x0-hat path does go through the UNet: the hook works


@pytest.mark.parametrize("lead", [0.5, 5.0, 25.0, 60.0, -3.0])
def test_confident_log_prob_is_exact_where_log_softmax_rounds_to_zero(lead):
    """Value and gradient against 50-digit decimal arithmetic: log p = l_y - log sum exp l, d/dl_j = [j = y] - p_j."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 4, generator=gen)
    logits[:, 2] = logits.amax(1) + lead if lead > 0 else logits[:, 2] + lead
    leaf = logits.clone().requires_grad_(True)
    value = confident_log_prob(leaf, 2)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    with localcontext() as ctx:
        ctx.prec = 50
        for row, v, g in zip(logits.tolist(), value.tolist(), grad.tolist()):
            total = sum(Decimal(l).exp() for l in row)
            exact = Decimal(row[2]) - total.ln()
            assert abs((Decimal(v) - exact) / exact) < Decimal("1e-5")  # relative, even at 1e-26
            for j, gj in enumerate(g):
                exact_gj = float((j == 2) - Decimal(row[j]).exp() / total)
                assert abs(gj - exact_gj) <= 1e-5 * abs(exact_gj) + 1e-38
    if lead >= 25:
        assert (torch.log_softmax(logits, dim=1)[:, 2] == 0).all()  # what DPS would have divided by


class SureConvNet(SmallConvNet):
    """Logits 200x SmallConvNet's: log_softmax reads log p as 0 for most inputs."""

    def forward(self, x):
        return super().forward(x) * 200.0


def test_dps_steps_stay_finite_where_the_classifier_is_sure(scheduler):
    unet, clf = tiny_unet(), SureConvNet()
    settings = GuidanceSettings(scale=0.05, target=1, x0_hat=True, method="dps")
    images, trace = _sample(unet, scheduler, clf, settings)
    assert torch.isfinite(images).all() and torch.isfinite(trace.term_norm).all()


# --- compute and informativeness ---------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_compute_counts_match_the_passes_made(scheduler, method):
    """The trace's counts against forward and backward hooks on the UNet and the classifier."""
    unet, clf = tiny_unet(), SmallConvNet()
    calls = {"unet_forward": 0, "unet_backward": 0, "classifier_forward": 0, "classifier_backward": 0}
    unet.register_forward_hook(lambda *_: calls.__setitem__("unet_forward", calls["unet_forward"] + 1))
    unet.conv_in.register_full_backward_hook(  # the UNet's output is no tensor: hook its first layer
        lambda *_: calls.__setitem__("unet_backward", calls["unet_backward"] + 1))
    clf.register_forward_hook(lambda *_: calls.__setitem__("classifier_forward", calls["classifier_forward"] + 1))
    clf.register_full_backward_hook(
        lambda *_: calls.__setitem__("classifier_backward", calls["classifier_backward"] + 1))
    settings = GuidanceSettings(scale=2.0, target=0, x0_hat=method != "paper", method=method)
    _, trace = _sample(unet, scheduler, clf, settings)
    assert trace.compute_per_sample() == calls  # one batch: a call is a pass for every sample
    step = settings.step
    assert calls["unet_forward"] == STEPS * step.recurrence
    assert calls["classifier_forward"] == STEPS * step.recurrence * step.inner_steps
    assert calls["unet_backward"] == (STEPS * step.recurrence if step.look == "x0_hat" else 0)


def test_unguided_sampling_counts_only_unet_forwards(scheduler):
    _, trace = _sample(tiny_unet(), scheduler, None, GuidanceSettings())
    assert trace.compute_per_sample() == {"unet_forward": STEPS, "unet_backward": 0, "classifier_forward": 0,
                                          "classifier_backward": 0}


def test_informativeness_is_one_when_the_reference_is_the_guide_on_x_t(scheduler):
    """Plain x_t guidance applies (a positive multiple of) the reference's own gradient."""
    unet, clf = tiny_unet(), SmallConvNet()
    settings = GuidanceSettings(scale=2.0, target=1)
    images, trace = _sample(unet, scheduler, clf, settings, judge_every=2, reference=SmallConvNet())
    watched = [0, 2, 4]
    torch.testing.assert_close(trace.informativeness[watched], torch.ones(len(watched), 3), rtol=0, atol=1e-5)
    assert torch.isnan(trace.informativeness[[1, 3]]).all()  # every 2nd step and the last
    alone, _ = _sample(unet, scheduler, clf, settings)
    assert torch.equal(images, alone)  # the reference only watches


@pytest.mark.parametrize("scale", [1.0, 1e-12, 1e-30])
def test_direction_cosine_does_not_depend_on_the_scale(scale):
    """A saturated classifier's gradient can have a norm far below F.cosine_similarity's 1e-8 floor."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 3, 8, 8, generator=gen), torch.randn(3, 3, 8, 8, generator=gen)
    expected = torch.from_numpy(np.array([u @ v / np.linalg.norm(u) / np.linalg.norm(v) for u, v in
                                          zip(a.double().flatten(1).numpy(), b.double().flatten(1).numpy())]))
    torch.testing.assert_close(direction_cosine(a * scale, b).double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(direction_cosine(a * scale, a), torch.ones(3), rtol=0, atol=1e-6)


def test_direction_cosine_of_a_zero_direction_is_nan():
    a = torch.randn(2, 12)
    a[1] = 0
    cos = direction_cosine(a, torch.randn(2, 12))
    assert torch.isfinite(cos[0]) and torch.isnan(cos[1])


def test_informativeness_of_another_direction_is_its_cosine(scheduler):
    """MPGD's direction (in x0) against another classifier's gradient at x_t, recomputed by hand at step 0."""
    unet, clf, ref = tiny_unet(), SmallConvNet(0), SmallConvNet(7)
    settings = GuidanceSettings(scale=2.0, target=1, x0_hat=True, method="mpgd")
    _, trace = _sample(unet, scheduler, clf, settings, reference=ref, judge_every=1)  # the reference at every step
    assert ((trace.informativeness >= -1) & (trace.informativeness <= 1)).all()
    gens = sample_generators(SEEDS)
    x = initial_noise(gens, SHAPE, "cpu")
    scheduler.set_timesteps(STEPS)
    t = scheduler.timesteps[0]
    look = noise_and_gradient(unet, clf, x, t, scheduler.alphas_cumprod[t], settings)
    leaf = x.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(_log_p(ref, leaf, 1).sum(), leaf)
    expected = torch.nn.functional.cosine_similarity(look.g.flatten(1), g_ref.flatten(1), dim=1)
    torch.testing.assert_close(trace.informativeness[0], expected, rtol=1e-5, atol=1e-6)
