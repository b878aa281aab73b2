import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler

from conftest import ColourClassifier, tiny_unet
from gradcheck.guidance import (AdamMoments, GradientEMA, GuidanceError, GuidanceSettings, guided_sample,
                                initial_noise, noise_and_gradient, normalise, per_sample_norm, per_sample_seeds,
                                posterior_variance, sample_generators, sample_seeds, x0_estimate)

SHAPE = (3, 8, 8)


def _run(unet, scheduler, classifier, settings, seeds=(0, 1, 2), steps=10):
    gens = sample_generators(list(seeds))
    noise = initial_noise(gens, SHAPE, "cpu")
    return guided_sample(unet, scheduler, classifier, noise, settings, gens, steps, progress=False)


def test_x0_estimate_equals_scheduler_pred_original_sample(unet):
    scheduler = DDPMScheduler(num_train_timesteps=100, clip_sample=False)
    scheduler.set_timesteps(20)
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps[[0, 7, -1]]:
        eps = unet(x, t).sample
        expected = scheduler.step(eps, t, x, generator=torch.Generator().manual_seed(1)).pred_original_sample
        torch.testing.assert_close(x0_estimate(x, eps, scheduler.alphas_cumprod[t]), expected)


@pytest.mark.parametrize("steps", [None, 7])
def test_posterior_variance_matches_scheduler(scheduler, steps):
    scheduler.set_timesteps(steps or 100)
    for t in scheduler.timesteps:
        torch.testing.assert_close(posterior_variance(scheduler, int(t)), scheduler._get_variance(int(t)))


def test_adam_term_equals_torch_optim_adam_with_lr_one():
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(2, *SHAPE, generator=gen) * (k + 1) for k in range(25)]
    param = torch.zeros(2, *SHAPE, requires_grad=True)
    optim = torch.optim.Adam([param], lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    ours = AdamMoments()
    for g in grads:
        before = param.detach().clone()
        param.grad = g.clone()
        optim.step()
        torch.testing.assert_close(ours(g), before - param.detach(), rtol=1e-5, atol=1e-6)


def test_ema_equals_the_weighted_sum_written_out():
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(2, *SHAPE, generator=gen) for _ in range(12)]
    ema = GradientEMA(0.9)
    for k, g in enumerate(grads, start=1):
        got = ema(g)
        weights = [(1 - 0.9) * 0.9 ** (k - j) for j in range(1, k + 1)]
        expected = sum(w * grads[j - 1] for j, w in zip(range(1, k + 1), weights)) / (1 - 0.9 ** k)
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(GradientEMA(0.99)(grads[0]), grads[0])  # bias-corrected: the first is g


def test_stabiliser_names_are_checked():
    assert GuidanceSettings(stabiliser="adam").adam and not GuidanceSettings(stabiliser="ema0.9").adam
    for bad in ("ema", "ema1.5", "ema0", "momentum", "ADAM"):
        with pytest.raises(ValueError, match="unknown stabiliser"):
            GuidanceSettings(stabiliser=bad)


def test_per_sample_seeds_are_disjoint_blocks():
    assert per_sample_seeds([0], 3) == [0, 1, 2]
    seeds = per_sample_seeds([0, 1, 7], 64)
    assert len(set(seeds)) == 192 and seeds[64] == 1_000_000 and seeds[-1] == 7_000_063
    with pytest.raises(ValueError, match="non-negative"):
        per_sample_seeds([-1], 3)


def test_normalise_gives_eps_norm_per_sample_and_keeps_zero():
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(4, *SHAPE, generator=gen) * torch.tensor([1e-6, 1.0, 1e3, 0.0]).view(4, 1, 1, 1)
    eps = torch.randn(4, *SHAPE, generator=gen)
    out = normalise(g, eps)
    torch.testing.assert_close(out[:3].flatten(1).norm(dim=1), eps[:3].flatten(1).norm(dim=1))
    assert torch.equal(out[3], torch.zeros(SHAPE))
    # direction is unchanged
    cos = torch.nn.functional.cosine_similarity(out[:3].flatten(1), g[:3].flatten(1))
    torch.testing.assert_close(cos, torch.ones(3))


def test_unguided_sampler_reproduces_diffusers_ddpm_pipeline(unet, scheduler):
    seeds = [11, 12, 13]
    reference = DDPMPipeline(unet=unet, scheduler=scheduler)(
        batch_size=3, generator=sample_generators(seeds), num_inference_steps=10, output_type="np").images
    ours, trace = _run(unet, scheduler, None, GuidanceSettings(scale=0.0), seeds)
    ours = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert torch.isnan(trace.cosine).all()  # nothing guided, nothing traced


class FixedDirection(torch.nn.Module):
    """log p(y=0|x) = log sigmoid(2 w.x): its gradient always points along w."""

    def __init__(self):
        super().__init__()
        self.w = torch.randn(int(np.prod(SHAPE)), generator=torch.Generator().manual_seed(5)) * 1e-3

    def forward(self, x):
        a = x.flatten(1) @ self.w
        return torch.stack([a, -a], dim=1)


class RandomDirection(torch.nn.Module):
    """A fresh random linear classifier on every call: gradients in random directions."""

    def __init__(self):
        super().__init__()
        self.gen = torch.Generator().manual_seed(7)

    def forward(self, x):
        w = torch.randn(int(np.prod(SHAPE)), generator=self.gen)
        a = x.flatten(1) @ w
        return torch.stack([a, torch.zeros_like(a)], dim=1)


def test_cosine_trace_is_one_for_constant_gradient(unet, scheduler):
    _, trace = _run(unet, scheduler, FixedDirection(), GuidanceSettings(scale=1.0, target=0))
    assert torch.isnan(trace.cosine[0]).all()
    torch.testing.assert_close(trace.cosine[1:], torch.ones_like(trace.cosine[1:]))


def test_cosine_trace_is_near_zero_for_random_gradients(unet, scheduler):
    _, trace = _run(unet, scheduler, RandomDirection(), GuidanceSettings(scale=1.0, target=0), steps=30)
    cos = trace.cosine[1:]
    assert cos.abs().mean() < 0.1  # 192 dimensions: |cos| ~ 1/sqrt(192) = 0.07
    assert cos.abs().mean() > 0.0


@pytest.mark.parametrize("x0_hat", [False, True])
@pytest.mark.parametrize("stabiliser", ["none", "adam", "ema0.9"])
def test_colour_classifier_pulls_samples_towards_its_class(unet, scheduler, x0_hat, stabiliser):
    seeds = list(range(6))
    unguided, _ = _run(unet, scheduler, None, GuidanceSettings(), seeds)
    redness = lambda x: (x[:, 0] - x[:, 1]).mean().item()
    to_red, trace = _run(unet, scheduler, ColourClassifier(),
                         GuidanceSettings(scale=20.0, target=0, x0_hat=x0_hat, stabiliser=stabiliser), seeds)
    to_green, _ = _run(unet, scheduler, ColourClassifier(),
                       GuidanceSettings(scale=20.0, target=1, x0_hat=x0_hat, stabiliser=stabiliser), seeds)
    assert redness(to_red) > redness(unguided) + 0.1
    assert redness(to_green) < redness(unguided) - 0.1
    assert (trace.term_norm[0] > 0).all() and torch.isfinite(trace.grad_norm).all()


def test_samples_do_not_depend_on_batch_size(unet, scheduler):
    settings = GuidanceSettings(scale=5.0, target=0, x0_hat=True, stabiliser="adam", clip_x0=False)
    args = (unet, scheduler, ColourClassifier(), settings)
    kwargs = dict(num_inference_steps=8, device="cpu", progress=False, judge=ColourClassifier())
    whole, trace_whole = sample_seeds(list(range(4)), *args, batch_size=4, **kwargs)
    split, trace_split = sample_seeds(list(range(4)), *args, batch_size=3, **kwargs)
    torch.testing.assert_close(whole, split, atol=1e-5, rtol=1e-5)
    for name in trace_whole.PER_SAMPLE:
        torch.testing.assert_close(getattr(trace_whole, name), getattr(trace_split, name), atol=1e-5, rtol=1e-5,
                                   equal_nan=True)


def test_judge_watches_without_changing_the_samples(unet, scheduler):
    settings = GuidanceSettings(scale=20.0, target=0, x0_hat=True)
    alone, trace_alone = _run(unet, scheduler, ColourClassifier(), settings)
    gens = sample_generators([0, 1, 2])
    watched, trace = guided_sample(unet, scheduler, ColourClassifier(), initial_noise(gens, SHAPE, "cpu"), settings,
                                   gens, 10, progress=False, judge=ColourClassifier(), judge_every=1)
    assert torch.equal(alone, watched) and torch.isnan(trace_alone.judge_confidence).all()
    conf = trace.judge_confidence
    assert conf.shape == (10, 3) and ((conf >= 0) & (conf <= 1)).all()
    # the judge's last reading is its softmax on the last step's clipped x0-hat: recompute it by hand
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[-1]
    x_last = None

    def keep_input(module, inputs, output):
        nonlocal x_last
        x_last = inputs[0].detach()

    hook = unet.register_forward_hook(keep_input)
    _run(unet, scheduler, ColourClassifier(), settings)
    hook.remove()
    eps = unet(x_last, t).sample
    x0 = x0_estimate(x_last, eps, scheduler.alphas_cumprod[t]).clamp(-1, 1)
    expected = torch.softmax(ColourClassifier()(x0), dim=1)[:, 0]
    torch.testing.assert_close(conf[-1], expected, rtol=1e-5, atol=1e-6)
    # guidance towards red: the judge (the same colour classifier) grows more confident over time
    assert conf[-1].mean() > conf[0].mean()


def test_a_judge_every_kth_step_reads_those_steps_alone(unet, scheduler):
    settings = GuidanceSettings(scale=20.0, target=0, x0_hat=True)
    gens = lambda: sample_generators([0, 1, 2])  # noqa: E731
    runs = {k: guided_sample(unet, scheduler, ColourClassifier(), initial_noise(gens(), SHAPE, "cpu"), settings,
                             gens(), 10, progress=False, judge=ColourClassifier(), judge_every=k) for k in (1, 4)}
    assert torch.equal(runs[1][0], runs[4][0])  # the samples do not change
    every, sparse = runs[1][1].judge_confidence, runs[4][1].judge_confidence
    read = [0, 4, 8, 9]  # every 4th step and the last
    torch.testing.assert_close(sparse[read], every[read])
    assert torch.isnan(sparse[[k for k in range(10) if k not in read]]).all()
    with pytest.raises(ValueError, match="judge_every"):
        guided_sample(unet, scheduler, None, initial_noise(gens(), SHAPE, "cpu"), GuidanceSettings(), gens(), 10,
                      progress=False, judge_every=0)


def test_the_python_api_watches_as_often_as_the_workflow():
    """One default for the judge's watch: config.yaml's, in every sampling entry point."""
    import inspect

    import yaml

    from conftest import REPO
    from gradcheck import cell, guidance, pipeline

    workflow = yaml.safe_load((REPO / "config.yaml").read_text())["sampling"]["judge_every"]
    for entry in (guidance.guided_sample, guidance.sample_seeds, guidance.sample_batches, cell.sample_cell,
                  pipeline.GuidedDDPMPipeline.__call__):
        assert inspect.signature(entry).parameters["judge_every"].default == workflow, entry.__qualname__


def test_eps_cosine_is_the_cosine_of_the_applied_direction(unet, scheduler):
    """With one step and no stabiliser, the applied direction is the normalised raw gradient."""
    settings = GuidanceSettings(scale=1.0, target=0)
    _, trace = _run(unet, scheduler, ColourClassifier(), settings, steps=1)
    gens = sample_generators([0, 1, 2])
    x = initial_noise(gens, SHAPE, "cpu").requires_grad_(True)
    scheduler.set_timesteps(1)
    t = scheduler.timesteps[0]
    eps = unet(x, t).sample.detach()
    log_p = torch.log_softmax(ColourClassifier()(x), dim=1)[:, 0].sum()
    (g,) = torch.autograd.grad(log_p, x)
    expected = torch.nn.functional.cosine_similarity(g.flatten(1), eps.flatten(1), dim=1)
    torch.testing.assert_close(trace.eps_cosine[0], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trace.grad_norm[0], g.flatten(1).norm(dim=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x0_hat", [False, True])
def test_one_unet_forward_per_step(scheduler, x0_hat):
    unet = tiny_unet()
    calls = []
    unet.register_forward_hook(lambda *_: calls.append(1))
    _run(unet, scheduler, ColourClassifier(), GuidanceSettings(scale=1.0, x0_hat=x0_hat), steps=9)
    assert len(calls) == 9


def test_non_finite_gradient_raises_naming_the_step(unet, scheduler):
    class NaNClassifier(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.flatten(1).sum(1) * float("nan"), x.flatten(1).sum(1)], dim=1)

    with pytest.raises(GuidanceError, match=r"sampling step 0 \(timestep \d+\) for samples \[0, 1, 2\]"):
        _run(unet, scheduler, NaNClassifier(), GuidanceSettings(scale=1.0))


def test_bad_arguments_are_rejected(unet, scheduler):
    with pytest.raises(ValueError, match="needs a classifier"):
        _run(unet, scheduler, None, GuidanceSettings(scale=1.0))
    with pytest.raises(ValueError, match="batch_size must be positive"):
        sample_seeds([0], unet, scheduler, None, GuidanceSettings(), 0, 5, "cpu")


# --- the authors' settings as options ---------------------------------------------------------


def _noisy_input(scheduler, t_index=20):
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(4)) * 1.5
    t = torch.tensor(t_index)
    return x, t, scheduler.alphas_cumprod[t]


def test_clipped_x0_hat_gradient_equals_autograd_through_diffusers_pred_original_sample(unet):
    """The authors' x0-hat: scheduler.step(...).pred_original_sample with clip_sample on."""
    scheduler = DDPMScheduler(num_train_timesteps=100, clip_sample=True)
    x, t, abar = _noisy_input(scheduler)
    settings = GuidanceSettings(scale=1.0, x0_hat=True, clip_x0=True)
    g = noise_and_gradient(unet, ColourClassifier(), x, t, abar, settings).g
    x_ref = x.clone().requires_grad_(True)
    x0 = scheduler.step(unet(x_ref, t).sample, t, x_ref, generator=sample_generators([9])).pred_original_sample
    assert (x0.abs() == 1).any() and (x0.abs() < 1).any()  # some pixels clipped, some not
    (expected,) = torch.autograd.grad(torch.log_softmax(ColourClassifier()(x0), dim=1)[:, 0].sum(), x_ref)
    torch.testing.assert_close(g, expected, rtol=1e-5, atol=1e-7)
    g_unclipped = noise_and_gradient(unet, ColourClassifier(), x, t, abar,
                                     GuidanceSettings(scale=1.0, x0_hat=True, clip_x0=False)).g
    assert not torch.allclose(g, g_unclipped)


def test_logit_objective_differentiates_the_raw_logit(unet, scheduler):
    """ColourClassifier's red logit is 5 (mean red - mean green): its gradient is +-5 / (H W), by hand."""
    x, t, abar = _noisy_input(scheduler)
    g = noise_and_gradient(unet, ColourClassifier(), x, t, abar, GuidanceSettings(scale=1.0, objective="logit")).g
    expected = torch.zeros(3, *SHAPE)
    expected[:, 0], expected[:, 1] = 5 / (SHAPE[1] * SHAPE[2]), -5 / (SHAPE[1] * SHAPE[2])
    torch.testing.assert_close(g, expected)
    g_log_p = noise_and_gradient(unet, ColourClassifier(), x, t, abar, GuidanceSettings(scale=1.0)).g
    assert not torch.allclose(g, g_log_p)  # log-softmax damps the gradient of a confident class


@pytest.mark.parametrize("normalise", [True, False])
def test_the_mean_shifts_by_s_sigma2_times_g_with_or_without_normalisation(unet, scheduler, normalise):
    """||shift|| = s sigma_t^2 ||g||, where ||g|| is ||eps|| (eq. 2) or the raw gradient's norm."""
    settings = GuidanceSettings(scale=3.0, target=0, normalise=normalise)
    gens = sample_generators([0, 1, 2])
    noise = initial_noise(gens, SHAPE, "cpu")
    _, trace = guided_sample(unet, scheduler, ColourClassifier(), noise, settings, gens, 4, progress=False)
    scheduler.set_timesteps(4)
    t = scheduler.timesteps[0]
    eps, g, *_ = noise_and_gradient(unet, ColourClassifier(), noise, t, scheduler.alphas_cumprod[t], settings)
    applied = per_sample_norm(eps) if normalise else per_sample_norm(g)
    torch.testing.assert_close(trace.term_norm[0], 3.0 * posterior_variance(scheduler, int(t)) * applied, rtol=1e-5,
                               atol=0)


def test_adam_without_bias_correction_is_the_raw_moment_ratio():
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(2, *SHAPE, generator=gen) for _ in range(6)]
    ours = AdamMoments(0.9, 0.999, 1e-4, bias_correction=False)
    m = v = torch.zeros(2, *SHAPE)
    for g in grads:
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        torch.testing.assert_close(ours(g), m / (v.sqrt() + 1e-4))


def test_ema_without_bias_correction_is_the_plain_moving_average():
    gen = torch.Generator().manual_seed(2)
    grads = [torch.randn(2, *SHAPE, generator=gen) for _ in range(5)]
    ema, m = GradientEMA(0.9, bias_correction=False), torch.zeros(2, *SHAPE)
    for g in grads:
        m = 0.9 * m + 0.1 * g
        torch.testing.assert_close(ema(g), m)


def test_ema_bias_correction_cancels_under_normalisation(unet, scheduler):
    """So the workflow need not resample EMA cells when only bias_correction changes."""
    runs = [_run(unet, scheduler, ColourClassifier(), GuidanceSettings(scale=5.0, stabiliser="ema0.9",
                                                                       bias_correction=bc))[0] for bc in (True, False)]
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-5, atol=1e-6)


def test_bfloat16_unet_samples_stay_close_to_float32(scheduler):
    """Reduced precision changes numbers: bound the change over a 10-step x0-hat + ADAM run (unclipped: where
    x0-hat is clipped, bfloat16's rounding moves pixels across the clip and so in or out of the gradient)."""
    settings = GuidanceSettings(scale=5.0, x0_hat=True, stabiliser="adam", clip_x0=False)
    full, trace = _run(tiny_unet(), scheduler, ColourClassifier(), settings)
    half, trace_half = _run(tiny_unet().to(torch.bfloat16), scheduler, ColourClassifier(), settings)
    assert half.dtype == torch.float32  # only the UNet runs in bfloat16
    difference = (full - half).abs()
    assert 0 < difference.max() < 0.05 and difference.mean() < 0.01
    assert torch.isfinite(trace_half.grad_norm).all()


def test_guidance_settings_reject_unknown_objective_and_bad_eps():
    with pytest.raises(ValueError, match="unknown objective 'softmax'"):
        GuidanceSettings(objective="softmax")
    with pytest.raises(ValueError, match="adam_eps must be positive"):
        GuidanceSettings(adam_eps=0.0)
