"""Where the tensors go: CUDA when present, the CPU otherwise."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """Resolve ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``.

    Which card a job gets is decided outside the process: SLURM or the user sets
    ``CUDA_VISIBLE_DEVICES`` and the job always takes the first visible device.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available on this machine")
    return device


def describe(device: torch.device) -> dict:
    """What a result was computed on, for the reproducibility record."""
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return info


def autocast(device: torch.device):
    """bf16 autocast on CUDA (training speed); a no-op on the CPU, where bf16 is slower."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
