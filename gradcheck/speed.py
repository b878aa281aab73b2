"""Kernel and layout choices that make the CPU faster without changing the maths.

Each was measured in ``benchmarks/`` (ratios in one run, 2-core AVX-512 CPU, no AMX):

- Attention: on the CPU, PyTorch picks its flash kernel for scaled dot-product attention;
  in bfloat16 that kernel's backward takes about 6x its float32 time and a fifth of an
  x0-hat sampling step (the UNet's mid-block attention). The math kernel makes the x0-hat
  step 16% and a training step 11-15% faster; a forward alone is 5% faster with flash, so
  it is used only where a backward follows. Only the rounding of bfloat16 changes; on
  CUDA PyTorch's own choice stands.
- Memory layout: MobileNetV3's forward and backward run 2.4-2.8x faster with
  channels-last weights and inputs on the CPU (depthwise convolutions); the UNet does not
  gain (slower), so it stays contiguous. Classifiers train channels-last too: a training step
  (batch 128, 32 px, 1 thread, AMX CPU, 2026-12-07) took 0.33x its contiguous time for
  MobileNetV3, 0.57x for ShuffleNetV2 and 1.09x for ResNet-18 (the FID feature network,
  trained once), whose forward alone is 0.94x.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

REDUCED_PRECISION = (torch.bfloat16, torch.float16)


def attention_kernel(device: torch.device, dtype: torch.dtype):
    """Context for a forward whose backward will run: the math attention kernel for reduced precision on CPU."""
    if device.type == "cpu" and dtype in REDUCED_PRECISION:
        return sdpa_kernel(SDPBackend.MATH)
    return nullcontext()


def to_classifier_layout(model: torch.nn.Module | None, device: torch.device) -> torch.nn.Module | None:
    """Move a classifier's 4-d weights to channels-last in place on CPU (values unchanged)."""
    if model is not None and device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def input_layout(model: torch.nn.Module) -> torch.memory_format:
    """The layout a model's inputs should take: that of its 4-d weights (channels-last or not)."""
    for p in model.parameters():
        if p.dim() == 4 and not p.is_contiguous():
            return torch.channels_last if p.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return torch.contiguous_format
