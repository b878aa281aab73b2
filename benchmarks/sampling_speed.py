"""Seconds per sampling step of one cell in four modes, each against the cost of its own parts.

Run:  python benchmarks/sampling_speed.py [--batch 96] [--steps 20] [--repeats 3] [--unet cpu|paper] [--compile]
      [--modes-only]

Three tables, all measured in this one run on the same models (weights are random: speed
does not depend on them), timings interleaved over repeats so that drift in machine load
hits every variant alike. Ratios taken in one run compare across machines; seconds do not.

1. The four modes of a cell (unguided, plain guidance, x0-hat, x0-hat + ADAM) and the
   training-free methods (MPGD, DPS, FreeDoM's K = 2, backward guidance's M = 4) as the
   workflow samples them (``--dtype``, the judge every ``--judge-every`` steps), and each
   as a ratio to its parts, timed alone: one UNet forward (no gradient), plus a classifier
   forward and backward for plain guidance; one UNet forward and the backward through the
   classifier and the UNet, for x0-hat (and DPS; twice that for FreeDoM); a UNet forward and a
   classifier forward and backward for MPGD, with three more classifier passes for backward
   guidance. A ratio near 1 means the sampler adds little. Below the table: MPGD's step as a
   ratio to the plain x_t step (the goal: at most 1.15x, since it needs no UNet backward).
2. The speed options, one at a time, for the UNet forward alone and with its backward:
   float32, bfloat16 weights (the sampler's ``unet_dtype``) with PyTorch's attention kernel
   (flash; the sampler's choice for a forward alone) and with the math kernel
   (``speed.attention_kernel``; the sampler's choice where a backward follows),
   float32 weights under bfloat16 autocast, channels-last memory layout,
   ``torch.inference_mode`` instead of ``no_grad`` and, with ``--compile``, ``torch.compile``
   (its compile time printed apart); and the guiding classifier's forward and backward with
   contiguous and channels-last weights and inputs (``speed.to_classifier_layout``).
3. A full-length x0-hat cell at T = 400 with 3 x 32 = 96 samples: the settings of the
   issue's filing day (its UNet, 32-64-128 with the middle block's attention, in float32,
   batches of 64, i.e. 64 + 32, the judge at every step, contiguous classifiers) against the
   current ones (one batch of 96, bfloat16 UNet with the math attention kernel, the judge
   every 10th step, channels-last classifiers), first on each earlier default's UNet, then
   on config.yaml's (32-64-96, no attention).
   Each is timed over ``--steps`` steps and scaled to 400. With few steps the judge's
   share (it also watches the last step) is larger than in a full chain: the ratios in
   table 1 and the time of "now" in table 3 err on the slow side.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from contextlib import nullcontext

import torch

from gradcheck.classifier import build_classifier
from gradcheck.ddpm import TORCH_DTYPES, UNetConfig, build_scheduler, build_unet
from gradcheck.device import pick_device
from gradcheck.guidance import GuidanceSettings, guided_sample, initial_noise, sample_generators
from gradcheck.speed import attention_kernel, to_classifier_layout

UNETS = {  # (UNet, image size): config.yaml's, the earlier defaults' and configs/paper.yaml's
    "cpu": (UNetConfig(), 32),  # the settings' defaults are config.yaml's
    "cpu-128": (UNetConfig((32, 64, 128), norm_num_groups=8, mid_attention=False), 32),
    "cpu-mid-attention": (UNetConfig((32, 64, 128), norm_num_groups=8, mid_attention=True), 32),
    "paper": (UNetConfig((64, 128, 192, 256), 2, (False, True, True, True), norm_num_groups=32, mid_attention=True), 64),
}
# Table 3: the UNets an option replaced, oldest first; the first is the filing day's ("before").
PREVIOUS = {"cpu": ["cpu-mid-attention", "cpu-128"]}
MODES = {
    "unguided": GuidanceSettings(scale=0.0),
    "guidance": GuidanceSettings(scale=1.0, target=3),
    "x0-hat": GuidanceSettings(scale=1.0, target=3, x0_hat=True),
    "x0-hat + ADAM": GuidanceSettings(scale=1.0, target=3, x0_hat=True, stabiliser="adam"),
    # the training-free methods (docs/methods.md), each against its own parts too
    "MPGD": GuidanceSettings(scale=1.0, target=3, x0_hat=True, method="mpgd"),
    "DPS": GuidanceSettings(scale=0.05, target=3, x0_hat=True, method="dps"),
    "FreeDoM (K = 2)": GuidanceSettings(scale=1.0, target=3, x0_hat=True, method="freedom"),
    "backward (M = 4)": GuidanceSettings(scale=1.0, target=3, x0_hat=True, method="backward"),
}
T = 400  # the default DDPM's T; full-length sampling runs every step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn, device, repeats: int = 1) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def interleaved(fns: dict, device, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn ``repeats`` times after one warm-up each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(seconds(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--unet", choices=UNETS, default="cpu",
                   help="the default config's UNet, the previous default's (with the middle block's attention) "
                        "or the paper's")
    p.add_argument("--batch", type=int, default=96, help="samples per batch (the default cell: 3 seeds x 32)")
    p.add_argument("--steps", type=int, default=20,
                   help="sampling steps per timing (respaced: a step costs the same at any t)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", choices=list(TORCH_DTYPES), default="bfloat16", help="the UNet's dtype in table 1")
    p.add_argument("--judge-every", type=int, default=10, help="the judge's interval in table 1")
    p.add_argument("--device", default="auto")
    p.add_argument("--modes-only", action="store_true", help="stop after table 1 (the modes and the methods)")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile of the bfloat16 UNet (about a minute to compile on 2 cores)")
    a = p.parse_args()
    device = pick_device(a.device)
    torch.manual_seed(0)
    unet_config, size = UNETS[a.unet]
    unet32 = build_unet(unet_config, size).to(device).eval().requires_grad_(False)
    unets = {"float32": unet32}
    for name in {a.dtype, "bfloat16"} - {"float32"}:
        unets[name] = build_unet(unet_config, size).to(device, TORCH_DTYPES[name]).eval().requires_grad_(False)
        unets[name].load_state_dict(unet32.state_dict())
    unet = unets[a.dtype]
    contiguous_classifier = build_classifier(4).to(device).eval().requires_grad_(False)
    classifier = to_classifier_layout(copy.deepcopy(contiguous_classifier), device)
    contiguous_judge = build_classifier(4, "shufflenet_v2_x0_5").to(device).eval().requires_grad_(False)
    judge = to_classifier_layout(copy.deepcopy(contiguous_judge), device)
    scheduler = build_scheduler(T)
    scheduler.set_timesteps(T)
    t = scheduler.timesteps[T // 2]
    abar = scheduler.alphas_cumprod[t].to(device)
    gens = sample_generators(list(range(a.batch)))
    x = initial_noise(gens, (3, size, size), device)
    n_params = sum(q.numel() for q in unet32.parameters()) / 1e6
    print(f"device {device}, {a.unet} UNet ({n_params:.1f}M), batch {a.batch}, {size} px, T = {T}, "
          f"{a.steps} steps x {a.repeats} repeats, torch threads {torch.get_num_threads()}")

    # --- the parts, each timed alone -------------------------------------------------------
    def kernel(model, flash):  # the sampler's attention kernel, or PyTorch's own choice
        return nullcontext() if flash else attention_kernel(device, next(model.parameters()).dtype)

    def unet_forward(model=unet, layout=torch.contiguous_format, mode=torch.no_grad, flash=True):
        with mode(), kernel(model, flash):
            return model(x.to(next(model.parameters()).dtype).contiguous(memory_format=layout), t).sample.float()

    def classifier_forward_backward(model=classifier, layout=torch.channels_last):
        leaf = x.detach().requires_grad_(True)
        torch.autograd.grad(model(leaf.contiguous(memory_format=layout)).log_softmax(1)[:, 3].sum(), leaf)

    def x0_forward_backward(model=unet, layout=torch.contiguous_format, autocast=False, flash=False):
        leaf = x.detach().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast), kernel(model, flash):
            eps = model(leaf.to(next(model.parameters()).dtype).contiguous(memory_format=layout), t).sample
        x0 = (leaf - (1 - abar).sqrt() * eps.float()) / abar.sqrt()
        torch.autograd.grad(classifier(x0.contiguous(memory_format=torch.channels_last)).log_softmax(1)[:, 3].sum(),
                            leaf)

    def run_mode(settings, model=unet, judge_every=a.judge_every, batch=a.batch, guide=classifier, watch=judge):
        noise, generators = x[:batch], sample_generators(list(range(batch)))
        guided_sample(model, scheduler, guide if settings.scale else None, noise, settings, generators,
                      a.steps, progress=False, judge=watch, judge_every=judge_every)

    parts = interleaved({"unet": lambda: unet_forward(), "classifier": classifier_forward_backward,
                         "x0": lambda: x0_forward_backward()}, device, a.repeats * 3)
    own_parts = {"unguided": parts["unet"], "guidance": parts["unet"] + parts["classifier"],
                 "x0-hat": parts["x0"], "x0-hat + ADAM": parts["x0"], "MPGD": parts["unet"] + parts["classifier"],
                 "DPS": parts["x0"], "FreeDoM (K = 2)": 2 * parts["x0"],
                 "backward (M = 4)": parts["unet"] + 4 * parts["classifier"]}
    per_step = {name: s / a.steps for name, s in
                interleaved({name: (lambda st=st: run_mode(st)) for name, st in MODES.items()},
                            device, a.repeats).items()}
    judged = len(set(range(0, a.steps, a.judge_every)) | {a.steps - 1})
    print(f"\n1. one cell, {a.dtype} UNet, the judge every {a.judge_every} steps and the last "
          f"({judged} of these {a.steps}; {len(range(0, T, a.judge_every)) + 1} of {T} in a full chain)")
    print(f"{'mode':<18}{'s/step':>10}{'parts s':>10}{'ratio':>8}   parts")
    labels = {"unguided": "UNet forward", "guidance": "UNet forward + classifier forward/backward",
              "x0-hat": "UNet forward + backward through classifier and UNet",
              "x0-hat + ADAM": "as x0-hat", "MPGD": "UNet forward + classifier forward/backward on x0-hat",
              "DPS": "as x0-hat", "FreeDoM (K = 2)": "2 x x0-hat", "backward (M = 4)": "UNet forward + 4 classifier f/b"}
    for name in MODES:
        print(f"{name:<18}{per_step[name]:>10.4f}{own_parts[name]:>10.4f}{per_step[name] / own_parts[name]:>8.2f}"
              f"   {labels[name]}")
    print(f"MPGD step / plain x_t step: {per_step['MPGD'] / per_step['guidance']:.2f}x (goal: at most 1.15x); "
          f"x0-hat step / plain x_t step: {per_step['x0-hat'] / per_step['guidance']:.2f}x")
    if a.modes_only:
        return

    # --- the options, one at a time ----------------------------------------------------------
    forward = interleaved({
        "float32": lambda: unet_forward(unet32),
        "bfloat16 weights, flash attention": lambda: unet_forward(unets["bfloat16"], flash=True),
        "bfloat16 weights, math attention": lambda: unet_forward(unets["bfloat16"], flash=False),
        "float32, channels-last": lambda: unet_forward(unet32.to(memory_format=torch.channels_last),
                                                       torch.channels_last),
        "float32, inference_mode": lambda: unet_forward(unet32.to(memory_format=torch.contiguous_format),
                                                        mode=torch.inference_mode),
    }, device, a.repeats * 3)
    unet32.to(memory_format=torch.contiguous_format)
    options = {}
    if a.compile:
        compiled = torch.compile(unets["bfloat16"], dynamic=False)
        compile_seconds = seconds(lambda: x0_forward_backward(compiled), device)  # the first call compiles
        options["bfloat16 weights, math attention, compiled"] = lambda: x0_forward_backward(compiled)
    backward = interleaved({
        "float32": lambda: x0_forward_backward(unet32),
        "bfloat16 weights, flash attention": lambda: x0_forward_backward(unets["bfloat16"], flash=True),
        "bfloat16 weights, math attention": lambda: x0_forward_backward(unets["bfloat16"]),
        "float32, bfloat16 autocast": lambda: x0_forward_backward(unet32, autocast=True),
        "float32, channels-last": lambda: x0_forward_backward(unet32.to(memory_format=torch.channels_last),
                                                              torch.channels_last),
        **options,
    }, device, a.repeats * 3)
    unet32.to(memory_format=torch.contiguous_format)
    guide = interleaved({
        "contiguous": lambda: classifier_forward_backward(contiguous_classifier, torch.contiguous_format),
        "channels-last": lambda: classifier_forward_backward(),
    }, device, a.repeats * 3)
    print(f"\n2. speed options at batch {a.batch}, seconds (x the first row)")
    for title, times in (("UNet forward", forward), ("x0-hat forward + backward", backward),
                         ("classifier forward + backward", guide)):
        print(f"{title:<44}{'s':>10}{'x':>8}")
        first = next(iter(times.values()))
        for name, s in times.items():
            print(f"  {name:<42}{s:>10.4f}{s / first:>8.2f}")
    if a.compile:
        print(f"  (torch.compile: the first call, compiling, took {compile_seconds:.0f} s)")

    # --- a full-length x0-hat cell: the previous default against the current one ------------
    x0 = MODES["x0-hat"]
    earlier = PREVIOUS.get(a.unet, [])
    first = earlier[0] if earlier else a.unet
    before_unet = build_unet(UNETS[first][0], size).to(device).eval().requires_grad_(False)
    before_batches = [min(64, a.batch - i) for i in range(0, a.batch, 64)]  # the filing day's batch size: 64
    cells = {"before": lambda: [run_mode(x0, before_unet, 1, b, contiguous_classifier, contiguous_judge)
                                for b in before_batches]}
    rows = {"before": f"{first} UNet, float32, batches of {' + '.join(map(str, before_batches))}, judge every step, "
                      f"contiguous classifiers"}
    settings_now = (f"{a.dtype} (math attention), one batch of {a.batch}, judge every {a.judge_every}th step, "
                    f"channels-last classifiers")
    for name in earlier:
        model = build_unet(UNETS[name][0], size).to(device, TORCH_DTYPES[a.dtype]).eval().requires_grad_(False)
        cells[f"{name} now"] = lambda model=model: run_mode(x0, model, a.judge_every, a.batch)
        rows[f"{name} now"] = f"{name} UNet, {settings_now}"
    cells["now"] = lambda: run_mode(x0, unet, a.judge_every, a.batch)
    rows["now"] = f"{a.unet} UNet, {settings_now}"
    cell = {k: s / a.steps * T for k, s in interleaved(cells, device, a.repeats).items()}
    print(f"\n3. full-length x0-hat cell, T = {T}, {a.batch} samples (timed over {a.steps} steps, scaled to {T})")
    width = max(map(len, cell)) + 2
    for name, minutes in cell.items():
        print(f"{name + ':':<{width}}{minutes / 60:5.1f} min  {cell['before'] / minutes:5.2f}x   {rows[name]}")


if __name__ == "__main__":
    main()
