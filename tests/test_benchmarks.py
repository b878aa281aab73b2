"""The benchmarks time the UNets the configs train: docs quote their ratios as config.yaml's."""

import importlib.util
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from gradcheck.ddpm import UNetConfig

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(*overlays):
    """config.yaml with each `--configfile` merged over it and the schema's defaults, as the workflow reads it."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, yaml.safe_load((ROOT / overlay).read_text()))
    validate(config, str(ROOT / "configs" / "schema.yaml"))
    return config


def _unet_of(config):
    ddpm = config["ddpm"]
    return UNetConfig(tuple(ddpm["block_out_channels"]), ddpm["layers_per_block"], tuple(ddpm["attention"]),
                      ddpm["norm_num_groups"],
                      # no schema default: unset, train-ddpm gets no flag and keeps diffusers' attention
                      ddpm.get("mid_attention", UNetConfig().mid_attention)), config["data"]["image_size"]


@pytest.mark.parametrize("unet, overlays", [("cpu", ()), ("paper", ("configs/paper.yaml",))])
def test_sampling_benchmark_times_the_configs_unets(unet, overlays):
    assert _module("sampling_speed").UNETS[unet] == _unet_of(_config(*overlays))


def test_unet_shapes_marks_config_yamls_unet_as_the_default():
    shapes = _module("unet_shapes").SHAPES
    defaults = [channels for name, channels in shapes.items() if "(default)" in name]
    assert defaults == [tuple(_config()["ddpm"]["block_out_channels"])]
