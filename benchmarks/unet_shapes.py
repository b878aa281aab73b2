"""Seconds per x0-hat sampling step and per training step for UNet shapes narrower than the previous default.

Run:  python benchmarks/unet_shapes.py [--repeats 5] [--train-batch 32]

The previous default's UNet (channels 32-64-128, one ResNet block per level, no attention, 8
GroupNorm groups) against narrower ones, config.yaml's 32-64-96 among them, each timed as the
two things it costs: the x0-hat step's forward and backward through the UNet (bfloat16
weights, batch 96, gradient to the input only, as the sampler runs it) and a
bfloat16-autocast AdamW training step (config.yaml's batch, 32).
Shapes interleaved over repeats, so that drift in machine load hits each alike; ratios to
the first taken in one run compare across machines, seconds do not. Speed only: a narrower
UNet must also train to the same quality (docs/decisions/ddpm-recipe.md says which were measured).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradcheck.ddpm import UNetConfig, build_unet

SHAPES = {  # block_out_channels; every level divides into 8 GroupNorm groups
    "32-64-128 (previous)": (32, 64, 128),
    "32-64-96 (default)": (32, 64, 96),
    "32-64-64": (32, 64, 64),
    "32-48-96": (32, 48, 96),
    "24-48-96": (24, 48, 96),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-batch", type=int, default=32, help="images per training step (config.yaml: 32)")
    a = p.parse_args()
    torch.manual_seed(0)
    x96, t = torch.randn(96, 3, 32, 32), torch.tensor(200)
    n = a.train_batch
    images, noise, t_train = torch.randn(n, 3, 32, 32), torch.randn(n, 3, 32, 32), torch.randint(0, 400, (n,))
    steps, sizes = {}, {}
    for name, channels in SHAPES.items():
        config = UNetConfig(block_out_channels=channels, attention=(False,) * 3, norm_num_groups=8,
                            mid_attention=False)
        trained = build_unet(config, 32)
        sizes[name] = sum(q.numel() for q in trained.parameters()) / 1e6
        sampler = build_unet(config, 32).to(torch.bfloat16).eval().requires_grad_(False)
        optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-3)

        def x0_step(unet=sampler):
            leaf = x96.detach().requires_grad_(True)
            eps = unet(leaf.to(torch.bfloat16), t).sample.float()
            torch.autograd.grad((leaf - eps).square().sum(), leaf)

        def train_step(unet=trained, optimizer=optimizer):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                pred = unet(images, t_train).sample
            loss = (pred.float() - noise).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        x0_step(), train_step()  # warm-up
        steps[name] = (x0_step, train_step)
    times = {name: ([], []) for name in steps}
    for _ in range(a.repeats):
        for name, fns in steps.items():
            for fn, ts in zip(fns, times[name]):
                start = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - start)
    base = [statistics.median(ts) for ts in times[next(iter(times))]]
    print(f"32 px, x0-hat at batch 96, training at batch {n}, torch threads {torch.get_num_threads()}, "
          f"median of {a.repeats}\n")
    print(f"{'UNet channels':<22}{'params':>8}{'x0-hat s':>10}{'x':>6}{'train s':>10}{'x':>6}")
    for name, (x0, train) in times.items():
        x0, train = statistics.median(x0), statistics.median(train)
        print(f"{name:<22}{sizes[name]:>7.2f}M{x0:>10.3f}{x0 / base[0]:>6.2f}{train:>10.3f}{train / base[1]:>6.2f}")


if __name__ == "__main__":
    main()
