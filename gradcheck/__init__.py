"""GradCheck: analyse classifier-guidance gradients in diffusion models."""

__version__ = "0.1.0"
