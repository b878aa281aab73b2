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
- Precision: ``auto`` (the default of training and sampling) is bfloat16 where the device has native
  bfloat16 kernels and float32 elsewhere. On a CPU with only AVX2, oneDNN has no bfloat16 kernels and
  PyTorch falls back to reference loops: a DDPM training step took 21.9 s in bfloat16 autocast against
  1.4 s in float32 (16x; AMD EPYC, AVX2, 1 thread, 2026-12-07), and a bfloat16 matrix product reached
  1.1 GFLOP/s against 61 in float32 (``benchmarks/roofline.py``). Its samples also moved further from
  float32's: 0.43 at most in tests/test_speed.py's bfloat16 test, whose bound is 0.05 where the kernels exist.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

log = logging.getLogger(__name__)
REDUCED_PRECISION = (torch.bfloat16, torch.float16)


def native_bfloat16(device: torch.device | str) -> bool:
    """Whether ``device`` runs bfloat16 convolutions and matrix products in hardware kernels: a CUDA card
    that supports bfloat16, or a CPU for which oneDNN has bfloat16 kernels (AVX-512 or AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere or later: emulated is slow
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_precision(requested: str, device: torch.device | str) -> str:
    """The precision a job runs in: ``auto`` is bfloat16 where the device has it natively
    (``native_bfloat16``) and float32 elsewhere; any other name is kept, with a warning where
    bfloat16 would fall back to reference loops (16x slower than float32 for a DDPM training step)."""
    if requested == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    if requested == "bfloat16" and not native_bfloat16(device):
        log.warning("bfloat16 was asked for, but %s has no bfloat16 kernels: it runs about 16x slower "
                    "than float32 here, and rounds more coarsely; 'auto' chooses float32 on such a device",
                    torch.device(device))
    return requested


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
