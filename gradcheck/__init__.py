"""GradCheck: analyse classifier-guidance gradients in diffusion models."""

__version__ = "0.1.0"

# Loaded on first use, so that ``import gradcheck`` (and the CLI's figure commands) imports no torch.
_LAZY = {"GuidedDDPMPipeline": "gradcheck.pipeline", "GuidedPipelineOutput": "gradcheck.pipeline"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
