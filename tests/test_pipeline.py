"""GuidedDDPMPipeline: diffusers' DDPMPipeline unguided, the guided sampler guided, through save and load."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler

from conftest import REPO, ColourClassifier, tiny_unet
from gradcheck.guidance import sample_seeds
from gradcheck.pipeline import GuidedDDPMPipeline, GuidedPipelineOutput
from gradcheck.settings import GuidanceSettings

STEPS = 6
SEEDS = [0, 1, 2]


@pytest.fixture
def pipe():
    return GuidedDDPMPipeline(unet=tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=100))


def test_unguided_equals_diffusers_ddpm_pipeline(pipe):
    ours = pipe(generator=[torch.Generator().manual_seed(s) for s in SEEDS], num_inference_steps=STEPS,
                output_type="np", progress=False).images
    reference = DDPMPipeline(unet=pipe.unet, scheduler=DDPMScheduler(num_train_timesteps=100))
    reference.set_progress_bar_config(disable=True)
    theirs = reference(batch_size=len(SEEDS), generator=[torch.Generator().manual_seed(s) for s in SEEDS],
                       num_inference_steps=STEPS, output_type="np").images
    assert ours.shape == theirs.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(ours, theirs)
    # seeds= draws the same generators as generator=: the same samples in the same batch, and within
    # float32's last bits in batches of 2 (the UNet's convolutions differ there by batch size)
    kwargs = dict(seeds=SEEDS, num_inference_steps=STEPS, output_type="np", progress=False)
    np.testing.assert_array_equal(pipe(batch_size=3, **kwargs).images, ours)
    np.testing.assert_allclose(pipe(batch_size=2, **kwargs).images, ours, atol=1e-6)


def test_guided_equals_the_sampler():
    unet, scheduler = tiny_unet(), DDPMScheduler(num_train_timesteps=100)
    pipe = GuidedDDPMPipeline(unet=unet, scheduler=scheduler)
    kwargs = dict(target=1, method="mpgd", scale=5.0, stabiliser="adam", seeds=SEEDS, batch_size=2,
                  num_inference_steps=STEPS, progress=False)
    out = pipe(ColourClassifier(), output_type="latent", **kwargs)
    settings = GuidanceSettings(scale=5.0, target=1, x0_hat=True, stabiliser="adam", method="mpgd")
    images, trace = sample_seeds(SEEDS, unet, DDPMScheduler(num_train_timesteps=100), ColourClassifier(),
                                 settings, 2, STEPS, "cpu", progress=False)
    assert torch.equal(out.images, images)
    assert torch.equal(out.trace.grad_norm, trace.grad_norm)
    # "pt" is DDPMPipeline's [0, 1] tensor of the same samples
    pt = pipe(ColourClassifier(), output_type="pt", **kwargs).images
    assert torch.equal(pt, (images / 2 + 0.5).clamp(0, 1))
    unguided = pipe(output_type="latent", seeds=SEEDS, num_inference_steps=STEPS, progress=False).images
    assert not torch.equal(unguided, images)  # the guidance moved the samples


def test_save_and_load_sample_identically(pipe, tmp_path):
    kwargs = dict(target=0, method="paper", scale=3.0, x0_hat=True, seeds=[4, 5], num_inference_steps=STEPS,
                  output_type="pt", progress=False)
    before = pipe(ColourClassifier(), **kwargs).images
    pipe.save_pretrained(tmp_path)
    loaded = GuidedDDPMPipeline.from_pretrained(tmp_path, low_cpu_mem_usage=False)
    assert isinstance(loaded.scheduler, DDPMScheduler)
    for (name, ours), theirs in zip(pipe.unet.state_dict().items(), loaded.unet.state_dict().values()):
        assert torch.equal(ours, theirs), name
    # float32 kernels may round by alignment (seen with AVX2 and with AVX-512 on AMD EPYC CPUs), and safetensors
    # leaves the loaded weights unaligned: 2e-7 apart (2026-12-07), identical once copied
    images = loaded(ColourClassifier(), **kwargs).images
    torch.testing.assert_close(images, before, atol=1e-6, rtol=0)
    for param in loaded.unet.parameters():
        param.data = param.data.clone()  # aligned
    assert torch.equal(loaded(ColourClassifier(), **kwargs).images, before)
    # the directory is an ordinary DDPM pipeline's too
    assert isinstance(DDPMPipeline.from_pretrained(tmp_path, low_cpu_mem_usage=False).unet, type(pipe.unet))


def test_trace_and_compute_counts(pipe):
    out = pipe(ColourClassifier(), target=1, method="mpgd", scale=5.0, seeds=SEEDS, num_inference_steps=STEPS,
               output_type="pil", progress=False)
    assert isinstance(out, GuidedPipelineOutput) and len(out.images) == 3 and out.images[0].size == (8, 8)
    trace = out.trace
    assert trace.timesteps.shape == (STEPS,) and trace.grad_norm.shape == (STEPS, 3)
    assert torch.isnan(trace.cosine[0]).all() and torch.isfinite(trace.cosine[1:]).all()
    assert trace.compute_per_sample() == {"unet_forward": STEPS, "unet_backward": 0,
                                          "classifier_forward": STEPS, "classifier_backward": STEPS}
    images, tuple_trace = pipe(ColourClassifier(), target=1, method="dps", scale=5.0, seeds=SEEDS[:2],
                               num_inference_steps=STEPS, output_type="np", return_dict=False, progress=False)
    assert images.shape == (2, 8, 8, 3) and tuple_trace.compute_per_sample()["unet_backward"] == STEPS


def test_refusals(pipe):
    with pytest.raises(ValueError, match="needs a classifier"):
        pipe(scale=1.0, num_inference_steps=STEPS, progress=False)
    with pytest.raises(ValueError, match="'nonesuch'"):
        pipe(ColourClassifier(), method="nonesuch", scale=1.0, num_inference_steps=STEPS, progress=False)
    with pytest.raises(ValueError, match="x0_hat must be true"):
        pipe(ColourClassifier(), method="mpgd", x0_hat=False, scale=1.0, progress=False)
    with pytest.raises(ValueError, match="recurrence"):
        pipe(ColourClassifier(), method="freedom", scale=1.0, recurrence=0, progress=False)
    with pytest.raises(ValueError, match="not both"):
        pipe(seeds=[0], generator=[torch.Generator()], progress=False)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(num_inference_steps=0, progress=False)


def test_a_bad_target_or_scale_is_refused_at_the_call_before_any_unet_pass(pipe):
    passes = []
    pipe.unet.register_forward_hook(lambda *args: passes.append(1))
    with pytest.raises(ValueError, match="target 7 is not a class of this classifier: it has 2 "):
        pipe(ColourClassifier(), target=7, scale=1.0, num_inference_steps=STEPS, progress=False)
    with pytest.raises(ValueError, match="target must be a class index 0, 1, ..., got -1"):
        pipe(ColourClassifier(), target=-1, scale=1.0, num_inference_steps=STEPS, progress=False)
    with pytest.raises(ValueError, match="scale must be 0 or positive .* got -3"):
        pipe(ColourClassifier(), target=1, scale=-3.0, num_inference_steps=STEPS, progress=False)
    assert passes == []
    trace = pipe(ColourClassifier(), target=np.int64(1), scale=1.0, seeds=SEEDS, num_inference_steps=STEPS,
                 progress=False).trace
    assert repr(trace) == ("SamplingTrace(6 steps x 3 samples: cosine, grad_norm, term_norm, eps_cosine, "
                           "judge_confidence, informativeness, staleness, spread; per sample {'unet_forward': 6, "
                           "'unet_backward': 0, "
                           "'classifier_forward': 6, 'classifier_backward': 6})")


def test_import_gradcheck_stays_torch_free():
    code = ("import gradcheck, sys; assert 'torch' not in sys.modules, 'imported torch'; "
            "cls = gradcheck.GuidedDDPMPipeline; assert cls.__name__ == 'GuidedDDPMPipeline'")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import gradcheck

    assert gradcheck.GuidedDDPMPipeline is GuidedDDPMPipeline
    with pytest.raises(AttributeError):
        gradcheck.nonesuch
