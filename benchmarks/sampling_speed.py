"""Seconds per sampling step for unguided, plain guidance, x0-hat, the stabilisers and the judge.

Run:  python benchmarks/sampling_speed.py [--unet cpu|paper] [--batch 64] [--steps 10] [--device auto]

The variants are timed in one run on the same models (the CPU-default UNet of 2.5M
parameters at 32 px, or with --unet paper the paper's 22.4M UNet at 64 px, and a
MobileNetV3-small), interleaved over several repeats, and each is
reported as a ratio to unguided: ratios taken in one run are comparable across machines,
seconds are not. Weights are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradcheck.classifier import build_classifier
from gradcheck.ddpm import UNetConfig, build_scheduler, build_unet
from gradcheck.device import pick_device
from gradcheck.guidance import GuidanceSettings, guided_sample, initial_noise, sample_generators

UNETS = {  # (UNet, image size): config.yaml's and configs/paper.yaml's
    "cpu": (UNetConfig(), 32),
    "paper": (UNetConfig((64, 128, 192, 256), 2, (False, True, True, True)), 64),
}
# name -> (settings, with the judge watching x0-hat at every step, as the workflow samples)
VARIANTS = {
    "unguided": (GuidanceSettings(scale=0.0), False),
    "guidance": (GuidanceSettings(scale=10.0, target=3), False),
    "x0-hat": (GuidanceSettings(scale=10.0, target=3, x0_hat=True), False),
    "x0-hat + ADAM": (GuidanceSettings(scale=10.0, target=3, x0_hat=True, stabiliser="adam"), False),
    "x0-hat + EMA0.9": (GuidanceSettings(scale=10.0, target=3, x0_hat=True, stabiliser="ema0.9"), False),
    "guidance + judge": (GuidanceSettings(scale=10.0, target=3), True),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--unet", choices=UNETS, default="cpu", help="the default config's UNet or the paper's")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="sampling steps per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    device = pick_device(a.device)
    torch.manual_seed(0)
    unet_config, size = UNETS[a.unet]
    unet = build_unet(unet_config, size).to(device).eval().requires_grad_(False)
    classifier = build_classifier(4).to(device).eval().requires_grad_(False)
    judge = build_classifier(4, "shufflenet_v2_x0_5").to(device).eval().requires_grad_(False)
    scheduler = build_scheduler(1000)
    gens = sample_generators(list(range(a.batch)))
    noise = initial_noise(gens, (3, size, size), device)

    def once(settings, watched):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        guided_sample(unet, scheduler, classifier, noise, settings, sample_generators(list(range(a.batch))),
                      a.steps, progress=False, judge=judge if watched else None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / a.steps

    for variant in VARIANTS.values():  # warm-up
        once(*variant)
    times = {name: [] for name in VARIANTS}
    for _ in range(a.repeats):  # interleaved, so drift in machine load hits every variant alike
        for name, variant in VARIANTS.items():
            times[name].append(once(*variant))
    base = statistics.median(times["unguided"])
    n_params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"device {device}, {a.unet} UNet ({n_params:.1f}M), batch {a.batch}, {size} px, "
          f"{a.steps} steps x {a.repeats} repeats, torch threads {torch.get_num_threads()}")
    print(f"{'variant':<18}{'s/step (median)':>16}{'x unguided':>12}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<18}{med:>16.4f}{med / base:>12.2f}")


if __name__ == "__main__":
    main()
