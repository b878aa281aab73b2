"""The benchmarks time the UNets the configs train: docs quote their ratios as config.yaml's."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from gradcheck.ddpm import UNetConfig

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(*overlays):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for overlay in overlays:  # --configfile merges top-level sections key by key
        for section, values in yaml.safe_load((ROOT / overlay).read_text()).items():
            config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    return config


def _unet_of(config):
    ddpm = config["ddpm"]
    unset = UNetConfig()
    return UNetConfig(tuple(ddpm["block_out_channels"]), ddpm["layers_per_block"], tuple(ddpm["attention"]),
                      ddpm.get("norm_num_groups", unset.norm_num_groups),
                      ddpm.get("mid_attention", unset.mid_attention)), config["data"]["image_size"]


@pytest.mark.parametrize("unet, overlays", [("cpu", ()), ("paper", ("configs/paper.yaml",))])
def test_sampling_benchmark_times_the_configs_unets(unet, overlays):
    assert _module("sampling_speed").UNETS[unet] == _unet_of(_config(*overlays))


def test_unet_shapes_marks_config_yamls_unet_as_the_default():
    shapes = _module("unet_shapes").SHAPES
    defaults = [channels for name, channels in shapes.items() if "(default)" in name]
    assert defaults == [tuple(_config()["ddpm"]["block_out_channels"])]
