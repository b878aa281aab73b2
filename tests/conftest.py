import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

torch.set_num_threads(min(2, torch.get_num_threads()))


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
