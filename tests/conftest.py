import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"


def snakemake(workdir, *args, configfile=TINY, check=True, env=None, timeout=900):
    """Run the real Snakemake on this repository's workflow in ``workdir``."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    configfiles = configfile if isinstance(configfile, (list, tuple)) else [configfile]  # later ones override
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", *map(str, configfiles), *args]
    # timeout -k: a wedged executor can ignore SIGTERM
    proc = subprocess.run(["timeout", "-k", "30", str(timeout), *cmd], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """The tiny workflow, run once locally, shared by the end-to-end and SLURM tests."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    snakemake(workdir, "--cores", "2", "--resources", "gpu=1")
    return workdir


def tiny_unet(size: int = 8, seed: int = 0) -> UNet2DModel:
    """A UNet small enough for tests (random weights; the sampler's maths does not care)."""
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=size, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                       layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D")).eval().requires_grad_(False)


@pytest.fixture
def unet():
    return tiny_unet()


@pytest.fixture
def scheduler():
    return DDPMScheduler(num_train_timesteps=100, beta_schedule="linear")


class ColourClassifier(torch.nn.Module):
    """Two classes, 'red' and 'green', read from the mean of the channels: a toy guide."""

    def forward(self, x):
        red, green = x[:, 0].mean((1, 2)), x[:, 1].mean((1, 2))
        return torch.stack([red - green, green - red], dim=1) * 5.0
