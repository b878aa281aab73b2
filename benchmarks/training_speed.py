"""Seconds per DDPM training step: float32 against bfloat16 autocast, channels-last, attention kernels.

Run:  python benchmarks/training_speed.py [--batch 64 128] [--repeats 5]

The previous default's UNet (2.5M parameters, 32 px, with the middle block's attention,
where the attention kernel matters; config.yaml's leaves it out), one AdamW step per timing, the variants
interleaved over repeats so that drift in machine load hits each alike. Ratios to float32
taken in one run compare across machines; seconds do not. Weights and data are random:
speed does not depend on them. Under bfloat16 autocast the trainer runs the UNet's attention
with the math kernel (``gradcheck.speed.attention_kernel``); PyTorch's own choice, flash, is
timed beside it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from contextlib import nullcontext

from gradcheck.ddpm import UNetConfig, build_unet
from gradcheck.speed import attention_kernel

VARIANTS = {  # name -> (bfloat16 autocast, channels-last, PyTorch's attention kernel rather than the trainer's)
    "float32": (False, False, False),
    "float32, channels-last": (False, True, False),
    "bfloat16 autocast, flash attention": (True, False, True),
    "bfloat16 autocast, math attention": (True, False, False),
    "bfloat16 autocast, math, channels-last": (True, True, False),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.manual_seed(0)
    print(f"UNet with the middle block's attention, 32 px, torch threads {torch.get_num_threads()}, median of {a.repeats} steps")
    for batch in a.batch:
        x, noise = torch.randn(batch, 3, 32, 32), torch.randn(batch, 3, 32, 32)
        t = torch.randint(0, 400, (batch,))
        runs = {}
        for name, (bf16, channels_last, flash) in VARIANTS.items():
            unet = build_unet(UNetConfig((32, 64, 128), norm_num_groups=8, mid_attention=True), 32)
            layout = torch.channels_last if channels_last else torch.contiguous_format
            unet = unet.to(memory_format=layout)
            optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)

            def step(unet=unet, optimizer=optimizer, layout=layout, bf16=bf16, flash=flash):
                kernel = nullcontext() if flash else attention_kernel(torch.device("cpu"),
                                                                      torch.bfloat16 if bf16 else torch.float32)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), kernel:
                    pred = unet(x.contiguous(memory_format=layout), t).sample
                loss = (pred.float() - noise).pow(2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            step()  # warm-up
            runs[name] = step
        times = {name: [] for name in runs}
        for _ in range(a.repeats):
            for name, step in runs.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["float32"])
        print(f"\nbatch {batch}{'':<34}{'s/step':>10}{'x float32':>11}")
        for name, ts in times.items():
            print(f"{name:<42}{statistics.median(ts):>10.3f}{statistics.median(ts) / base:>11.2f}")


if __name__ == "__main__":
    main()
