"""The README's Python example runs as written, on tiny stand-ins for the user's models."""

import re
from pathlib import Path

import torch
from diffusers import DDPMScheduler

from conftest import ColourClassifier, tiny_unet

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_sampler_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Using the guided sampler"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {"unet": tiny_unet(), "scheduler": DDPMScheduler(num_train_timesteps=100),
                 "classifier": _FourClass()}
    exec(compile(code, "README.md", "exec"), namespace)
    images, trace = namespace["images"], namespace["trace"]
    assert images.shape == (16, 3, 8, 8) and trace.cosine.shape == (50, 16)
    assert "torch.Size([16, 3, 8, 8])" in capsys.readouterr().out


def test_readme_guided_pipeline_example_runs():
    text = README.read_text()
    section = text[text.index("Or as a diffusers pipeline"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "GuidedDDPMPipeline" in code
    namespace = {"unet": tiny_unet(), "scheduler": DDPMScheduler(num_train_timesteps=100),
                 "classifier": _FourClass()}
    exec(compile(code, "README.md", "exec"), namespace)
    out = namespace["out"]
    assert out.images.shape == (8, 3, 8, 8) and 0 <= out.images.min() and out.images.max() <= 1
    assert out.trace.cosine.shape == (50, 8) and out.trace.compute_per_sample()["unet_backward"] == 0


class _FourClass(torch.nn.Module):
    def forward(self, x):
        two = ColourClassifier()(x)
        return torch.cat([two, -two], dim=1)


def test_readme_pipeline_example_loads_the_trained_models(run, monkeypatch, caplog):
    """In a finished run's directory (the tiny workflow): the DDPM samples as the README shows, and
    diffusers' default of 1,000 steps, more than the DDPM's T, is refused, which is why it shows that call."""
    import pytest

    text = README.read_text()
    section = text[text.index("A trained workflow's DDPM"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(run)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    pipe = namespace["pipe"]
    assert len(namespace["unguided"]) == 4 and namespace["meta"]["mode"] == "noisy"
    with pytest.raises(ValueError, match="cannot be larger than"):
        pipe(batch_size=1)
    assert "accelerate" not in caplog.text
