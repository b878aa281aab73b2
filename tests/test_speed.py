"""The CPU speed choices (gradcheck.speed): what they change, bounded, and what they must not."""

import copy
import json
from contextlib import nullcontext

import pytest
import torch

from conftest import ColourClassifier, tiny_unet
from gradcheck import guidance, speed
from gradcheck.classifier import build_classifier
from gradcheck.guidance import GuidanceSettings, guided_sample, initial_noise, sample_generators, sample_seeds
from gradcheck.speed import attention_kernel, input_layout, to_classifier_layout

CPU = torch.device("cpu")


@pytest.fixture
def mobilenet():
    torch.manual_seed(3)
    return build_classifier(4).eval().requires_grad_(False)


def _sample(unet, scheduler, classifier, settings, size=8, seeds=(0, 1, 2), steps=10, judge=None):
    gens = sample_generators(list(seeds))
    noise = initial_noise(gens, (3, size, size), "cpu")
    return guided_sample(unet, scheduler, classifier, noise, settings, gens, steps, progress=False, judge=judge,
                         judge_every=1)


def test_attention_kernel_is_math_only_for_reduced_precision_on_cpu():
    with attention_kernel(CPU, torch.bfloat16):
        assert torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()  # restored on leaving
    assert isinstance(attention_kernel(CPU, torch.float32), nullcontext)
    assert isinstance(attention_kernel(torch.device("cuda"), torch.bfloat16), nullcontext)


@pytest.mark.skipif(not speed.native_bfloat16(CPU), reason="no bfloat16 kernels on this CPU: its reference loops "
                    "round more coarsely (0.43 from float32, AVX2), and 'auto' runs float32 here")
def test_math_attention_changes_bfloat16_samples_only_by_rounding(scheduler, monkeypatch):
    """The tiny UNet has the mid-block attention; bound math vs flash and each vs float32."""
    assert any("attention" in name for name, _ in tiny_unet().named_modules())
    settings = GuidanceSettings(scale=5.0, x0_hat=True, stabiliser="adam", clip_x0=False)  # as in test_guidance
    full, _ = _sample(tiny_unet(), scheduler, ColourClassifier(), settings)
    math_kernel, _ = _sample(tiny_unet().to(torch.bfloat16), scheduler, ColourClassifier(), settings)
    monkeypatch.setattr(guidance, "attention_kernel", lambda device, dtype: nullcontext())
    flash_kernel, _ = _sample(tiny_unet().to(torch.bfloat16), scheduler, ColourClassifier(), settings)
    for half in (math_kernel, flash_kernel):
        difference = (full - half).abs()
        assert difference.max() < 0.05 and difference.mean() < 0.01
    assert (math_kernel - flash_kernel).abs().max() < 0.05


def test_input_layout_follows_the_weights(mobilenet):
    assert input_layout(mobilenet) == torch.contiguous_format
    assert input_layout(ColourClassifier()) == torch.contiguous_format  # no weights at all
    assert to_classifier_layout(mobilenet, CPU) is mobilenet  # in place
    assert input_layout(mobilenet) == torch.channels_last
    assert to_classifier_layout(None, CPU) is None


@pytest.mark.parametrize("x0_hat", [False, True])
def test_channels_last_classifier_leaves_the_samples_unchanged(scheduler, mobilenet, x0_hat):
    """Only the memory layout changes: samples and gradients agree to float32 rounding."""
    unet = tiny_unet(size=16)
    settings = GuidanceSettings(scale=5.0, target=2, x0_hat=x0_hat)
    contiguous, trace = _sample(unet, scheduler, mobilenet, settings, size=16, judge=mobilenet)
    fast = to_classifier_layout(copy.deepcopy(mobilenet), CPU)
    channels_last, trace_cl = _sample(unet, scheduler, fast, settings, size=16, judge=fast)
    torch.testing.assert_close(channels_last, contiguous, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trace_cl.grad_norm, trace.grad_norm, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(trace_cl.judge_confidence, trace.judge_confidence, rtol=1e-4, atol=1e-6)


def test_batch_size_changes_samples_only_in_reduced_precision(scheduler, mobilenet):
    """float32: a sample does not depend on its batch. A bfloat16 UNet amplifies the last-bit
    differences of the guide's float32 matrix products between batch sizes (MKL picks its kernel
    by batch size), so samples move, by less than bfloat16 itself moves them from float32."""
    guide = to_classifier_layout(mobilenet, CPU)
    settings = GuidanceSettings(scale=5.0, target=1, x0_hat=True)
    kwargs = dict(num_inference_steps=6, device="cpu", progress=False, judge=guide)

    def sample(unet, batch_size):
        return sample_seeds(list(range(4)), unet, scheduler, guide, settings, batch_size=batch_size, **kwargs)

    whole, trace_whole = sample(tiny_unet(size=16), 4)
    split, trace_split = sample(tiny_unet(size=16), 3)
    torch.testing.assert_close(whole, split, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trace_whole.judge_confidence, trace_split.judge_confidence, atol=1e-5, rtol=1e-5,
                               equal_nan=True)
    half = tiny_unet(size=16).to(torch.bfloat16)
    half_whole, _ = sample(half, 4)
    half_split, _ = sample(half, 3)
    by_batch = (half_whole - half_split).abs().mean()
    by_precision = (half_whole - whole).abs().mean()
    assert by_batch < 0.5 * by_precision


# ShuffleNetV2 (the judge) is left out: on one thread (as after the suite's in-process CLI tests) one of its
# last ReLU's 16 x 1024 inputs, a BatchNorm output of 16 values, lies within float32 rounding of zero, and the
# two layouts round it to opposite sides. That one unit's gradient moves the whole gradient by 1.6% (3e-5 on
# two threads, where no input lies that near): rounding through a kink, not another function.
@pytest.mark.parametrize("architecture", ["mobilenet_v3_small"])
def test_a_channels_last_training_step_is_the_contiguous_one(architecture):
    """classifier.train_classifier runs channels-last on the CPU: loss and gradients agree to float32 rounding."""
    x, y = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 4
    steps = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(1)
        model = build_classifier(4, architecture).train()
        if layout == torch.channels_last:
            to_classifier_layout(model, CPU)
        loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=layout)), y)
        loss.backward()
        steps[layout] = (loss.detach(), [p.grad.contiguous() for p in model.parameters()])
    (loss, grads), (loss_cl, grads_cl) = steps.values()
    torch.testing.assert_close(loss_cl, loss, rtol=1e-5, atol=1e-6)
    # the whole gradient (a BatchNorm bias that feeds another BatchNorm has a gradient of zero up to rounding,
    # so tensor by tensor rounding can exceed it): measured 4e-6 (MobileNetV3) and 3e-5 (ShuffleNetV2)
    grad, grad_cl = (torch.cat([g.flatten() for g in gs]) for gs in (grads, grads_cl))
    assert (grad_cl - grad).norm() / grad.norm() < 1e-4


def test_a_trained_classifier_comes_back_in_the_usual_layout():
    from gradcheck.classifier import ClassifierTrainConfig, train_classifier
    from gradcheck.ddpm import build_scheduler

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 16, 16, generator=gen) * 2 - 1, torch.arange(8) % 4
    model, report = train_classifier(x, y, x, y, build_scheduler(10), ClassifierTrainConfig(epochs=1, batch_size=8),
                                     4, CPU)
    assert input_layout(model) == torch.contiguous_format and report["epochs_run"] == 1


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_only_where_the_device_has_its_kernels(monkeypatch, caplog, native):
    monkeypatch.setattr(speed.torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    assert speed.resolve_precision("auto", CPU) == ("bfloat16" if native else "float32")
    assert speed.resolve_precision("float32", CPU) == "float32"
    with caplog.at_level("WARNING", logger="gradcheck.speed"):
        assert speed.resolve_precision("bfloat16", CPU) == "bfloat16"  # asked for by name: kept
    assert ("no bfloat16 kernels" in caplog.text) is not native
    monkeypatch.setattr(speed.torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert speed.resolve_precision("auto", "cuda") == "bfloat16"  # the CPU's kernels do not decide for a card
    # a card before Ampere has bfloat16 only by emulation, slower than float32
    monkeypatch.setattr(speed.torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert speed.resolve_precision("auto", "cuda") == "float32"


@pytest.mark.parametrize("native", [True, False])
def test_an_auto_ddpm_trains_and_samples_in_the_precision_it_records(tmp_path, monkeypatch, native):
    monkeypatch.setattr(speed.torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    from gradcheck.data import build_dataset, images_to_tensor
    from gradcheck.ddpm import DDPMTrainConfig, UNetConfig, load_pipeline, train_ddpm

    chosen = "bfloat16" if native else "float32"
    autocasts = []
    real_autocast = torch.autocast
    monkeypatch.setattr(torch, "autocast", lambda *a, **kw: autocasts.append(kw["enabled"]) or real_autocast(*a, **kw))
    unet = UNetConfig(block_out_channels=(32,), layers_per_block=1, attention=(False,), norm_num_groups=8,
                      mid_attention=False)
    cfg = DDPMTrainConfig(unet=unet, num_train_timesteps=40, steps=2, batch_size=4, warmup_steps=0,
                          precision="auto", snapshot_every=0, checkpoint_every=2, seed=0)
    images = images_to_tensor(build_dataset(4, 1, size=8, seed=0)["train_images"])
    train_ddpm(images, tmp_path / "ddpm", cfg, CPU, tmp_path / "work")
    assert autocasts == [native, native]
    record = json.loads((tmp_path / "ddpm" / "training.json").read_text())
    assert record["config"]["precision"] == chosen
    loaded, _ = load_pipeline(tmp_path / "ddpm", CPU, "auto")
    assert next(loaded.parameters()).dtype == getattr(torch, chosen)
