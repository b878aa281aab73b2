"""The benchmarks time the UNets the configs train: docs quote their ratios as config.yaml's."""

import importlib.util
from pathlib import Path

import pytest
import torch

from config_loading import load_config as _config
from gradcheck.settings import unet_config

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unet_of(config):
    return unet_config(config), config["data"]["image_size"]


@pytest.mark.parametrize("unet, overlays", [("cpu", ()), ("paper", ("configs/paper.yaml",))])
def test_sampling_benchmark_times_the_configs_unets(unet, overlays):
    assert _module("sampling_speed").UNETS[unet] == _unet_of(_config(*overlays))


def test_unet_shapes_marks_config_yamls_unet_as_the_default():
    shapes = _module("unet_shapes").SHAPES
    defaults = [channels for name, channels in shapes.items() if "(default)" in name]
    assert defaults == [tuple(_config()["ddpm"]["block_out_channels"])]


def test_roofline_times_config_yamls_unet_and_counts_its_flops():
    roofline = _module("roofline")
    unet, size = _unet_of(_config())
    assert unet == roofline.UNetConfig() and size == roofline.SIZE
    kernels = roofline.kernels()
    assert list(kernels) == ["DDPM training step, batch 32", "sampling: UNet forward, batch 96",
                             "x0-hat step: forward + backward, batch 96", "guide training step, batch 128"]
    work = {name: roofline.kernel_flops(name, fn) for name, (fn, _) in kernels.items()}
    # training: a forward and a backward with input and weight gradients, 3x a forward, at a third of the
    # batch; x0-hat: a forward and a backward with input gradients only (frozen weights), plus the guide
    forward96 = work["sampling: UNet forward, batch 96"]
    assert work["DDPM training step, batch 32"] == pytest.approx(forward96, rel=0.05)
    assert 2 * forward96 < work["x0-hat step: forward + backward, batch 96"] < 2.3 * forward96
    # the guide's step: 3x its forward, not the counter's own count, which takes a depthwise convolution's
    # backward for a dense one
    guide = roofline.build_classifier(4).eval()
    guide_forward = roofline.flops(lambda: guide(torch.randn(128, 3, size, size)))
    assert work["guide training step, batch 128"] == pytest.approx(3 * guide_forward)
    assert roofline.flops(kernels["guide training step, batch 128"][0]) > 10 * guide_forward


def test_the_shrunk_run_keeps_the_defaults_jobs_and_shortens_them():
    shrunk = _module("run_contention").SCALES["small"]
    default, small = _config(), _config(shrunk)  # the overlay passes the schema
    for key in ("replicates", "replicate_ddpm", "threads_per_job", "grid", "ablation"):
        assert small[key] == default[key], key
    assert small["ddpm"]["steps"] < default["ddpm"]["steps"]
    assert small["sampling"]["steps"] < default["ddpm"]["timesteps"]
    assert small["sampling"]["num_samples"] < default["sampling"]["num_samples"]


def test_data_parallel_benchmark_times_the_real_training_steps(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script: it imports its siblings
    data_parallel = _module("data_parallel")
    step, outside = data_parallel.train_seconds(threads=1, processes=1, steps=3, beside=0)
    assert 0 < step < 60 and outside >= 0
