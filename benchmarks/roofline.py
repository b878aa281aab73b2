"""How near the hardware the workflow's kernels run, and what a job spends outside them.

Run:  python benchmarks/roofline.py [--threads 1] [--repeats 5] [--no-profile] [--candidates [--compile]]

On whatever machine runs it, in this one run:
1. the CPU's bfloat16 and float32 GEMM peak (a 2048^3 matrix product; ``lscpu``'s AMX / AVX-512
   flags printed beside it, since they decide the bfloat16 peak);
2. the achieved GFLOP/s of the kernels that make a default run's time, with FLOPs counted by
   ``torch.utils.flop_counter`` (matrix products and convolutions; element-wise work counts none),
   each as a share of the measured bfloat16 GEMM peak:
   - a DDPM training step (config.yaml's UNet, batch 32, bfloat16 autocast, AdamW), as the trainer runs it;
   - a sampling step's UNet forward (bfloat16 weights, batch 96, no gradient), as an x_t cell runs it;
   - an x0-hat step (UNet forward, x0-hat, the guide's forward, the backward through both; batch 96);
   - a guide's training step (MobileNetV3, batch 128, float32, channels-last, AdamW), as the trainer runs it,
     counted as 3x its forward (the FLOP counter counts a depthwise convolution's backward as a dense one);
3. with the profile, where each kernel's time goes: convolutions, dtype copies, GroupNorm, SiLU, the rest;
4. with ``--candidates``, speed-ups of the training step, each timed against the trainer's own step: float16
   autocast, channels-last (oneDNN's preferred layout for bfloat16 convolutions), channels-last with
   GroupNorm run in the contiguous layout, and with ``--compile`` torch.compile; and each classifier
   architecture's training step channels-last against contiguous (the trainer runs them channels-last);
5. the seconds of a job that are not compute: the interpreter and imports, loading a DDPM pipeline
   and a classifier from disk.

``--threads`` is the torch threads of one job (the workflow's default is 1: docs/configuration.md);
run it with nothing else on the machine. Weights and data are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from diffusers import DDPMPipeline
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from gradcheck.classifier import build_classifier, load_classifier, save_classifier
from gradcheck.ddpm import UNetConfig, build_scheduler, build_unet, load_pipeline
from gradcheck.guidance import GuidanceSettings, noise_and_gradient
from gradcheck.settings import ARCHITECTURES
from gradcheck.speed import attention_kernel, input_layout, to_classifier_layout

SIZE, T = 32, 400
# Where a kernel's time goes: each profiled operator's self time falls in the first group whose pattern it matches.
GROUPS = {
    "convolution (forward, backward)": r"convolution|conv2d|mkldnn_conv",
    "dtype and layout copies": r"copy_|_to_copy|contiguous|clone",
    "GroupNorm": r"group_norm",
    "SiLU / activations": r"silu|hardswish|relu|sigmoid",
    "matrix products": r"::mm|addmm|bmm|matmul|linear",
}


def cpu_flags() -> str:
    """The lscpu flags that decide the bfloat16 and float16 peaks."""
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return "lscpu not found"
    model = re.search(r"Model name:\s*(.*)", flags)
    wanted = [f for f in ("amx_bf16", "amx_fp16", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512f", "avx2")
              if re.search(rf"\b{f}\b", flags)]
    return f"{model.group(1).strip() if model else 'unknown CPU'}; {' '.join(wanted) or 'no AVX-512/AMX'}"


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels on the first call
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def gemm_peak(dtype: torch.dtype, repeats: int, n: int = 2048) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats) / 1e9


def kernels():
    """name -> (function, note): the three kernels of a default run, built as the workflow runs them."""
    torch.manual_seed(0)
    unet_config = UNetConfig()  # the settings' defaults are config.yaml's UNet
    scheduler = build_scheduler(T, scale_betas=True)

    train_unet = build_unet(unet_config, SIZE).train()
    optimizer = torch.optim.AdamW(train_unet.parameters(), lr=1e-4)
    x32, noise32, t32 = torch.randn(32, 3, SIZE, SIZE), torch.randn(32, 3, SIZE, SIZE), torch.randint(0, T, (32,))

    def training_step():
        with torch.autocast("cpu", dtype=torch.bfloat16), attention_kernel(torch.device("cpu"), torch.bfloat16):
            pred = train_unet(x32, t32).sample
        loss = F.mse_loss(pred.float(), noise32)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    unet = build_unet(unet_config, SIZE).to(torch.bfloat16).eval().requires_grad_(False)
    x96, t = torch.randn(96, 3, SIZE, SIZE), torch.tensor(T // 2)
    guide = to_classifier_layout(build_classifier(4).eval().requires_grad_(False), torch.device("cpu"))
    settings = GuidanceSettings(scale=0.5, target=0, x0_hat=True)
    alpha_bar = scheduler.alphas_cumprod[t]

    def unet_forward():
        with torch.no_grad():
            unet(x96.to(torch.bfloat16), t)

    def x0_hat_step():
        noise_and_gradient(unet, guide, x96.contiguous(memory_format=input_layout(guide)), t, alpha_bar, settings)

    return {
        "DDPM training step, batch 32": (training_step, "bfloat16 autocast, AdamW"),
        "sampling: UNet forward, batch 96": (unet_forward, "bfloat16 weights"),
        "x0-hat step: forward + backward, batch 96": (x0_hat_step, "UNet and guide, bfloat16 UNet"),
        "guide training step, batch 128": (classifier_step("mobilenet_v3_small", channels_last=True),
                                           "MobileNetV3, float32, channels-last, AdamW; FLOPs: 3x its forward"),
    }


def guide_training_flops() -> float:
    """A guide training step's FLOPs as 3x its forward's (a forward and a backward with input and weight
    gradients): torch.utils.flop_counter counts a depthwise convolution's backward as a dense one, 25x over."""
    model = build_classifier(4).train()
    x = torch.randn(128, 3, SIZE, SIZE)
    return 3 * flops(lambda: model(x))


def kernel_flops(name: str, fn) -> float:
    return guide_training_flops() if name.startswith("guide training step") else flops(fn)


def classifier_step(architecture: str, channels_last: bool):
    """One training step of a classifier as classifier.train_classifier runs it (batch 128, 32 px, AdamW)."""
    torch.manual_seed(0)
    model = build_classifier(4, architecture).train()
    if channels_last:
        to_classifier_layout(model, torch.device("cpu"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x, y = torch.randn(128, 3, SIZE, SIZE).contiguous(memory_format=input_layout(model)), torch.arange(128) % 4

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _group_norm_contiguous(self, x):
    """nn.GroupNorm.forward that runs channels-last input in the contiguous layout (its fast kernel there)."""
    if x.dim() == 4 and not x.is_contiguous():
        out = F.group_norm(x.contiguous(), self.num_groups, self.weight, self.bias, self.eps)
        return out.contiguous(memory_format=torch.channels_last)
    return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def candidate_steps(compile_too: bool):
    """name -> a DDPM training step under one candidate speed-up (the trainer's step is the first)."""
    x, noise, t = torch.randn(32, 3, SIZE, SIZE), torch.randn(32, 3, SIZE, SIZE), torch.randint(0, T, (32,))
    variants = {"as the trainer (bfloat16 autocast, contiguous)": (torch.bfloat16, False, False, False),
                "float16 autocast": (torch.float16, False, False, False),
                "channels-last": (torch.bfloat16, True, False, False),
                "channels-last, GroupNorm contiguous": (torch.bfloat16, True, True, False)}
    if compile_too:
        variants["torch.compile (inductor)"] = (torch.bfloat16, False, False, True)
    steps = {}
    for name, (dtype, channels_last, gn_contiguous, compiled) in variants.items():
        torch.manual_seed(0)
        unet = build_unet(UNetConfig(), SIZE).train()
        layout = torch.channels_last if channels_last else torch.contiguous_format
        unet = unet.to(memory_format=layout)
        model = torch.compile(unet) if compiled else unet
        optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
        if gn_contiguous:  # this UNet's GroupNorms only: the other variants keep PyTorch's
            for m in unet.modules():
                if isinstance(m, torch.nn.GroupNorm):
                    m.forward = _group_norm_contiguous.__get__(m)

        def step(model=model, optimizer=optimizer, dtype=dtype, layout=layout):
            with torch.autocast("cpu", dtype=dtype):
                pred = model(x.contiguous(memory_format=layout), t).sample
            loss = F.mse_loss(pred.float(), noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        started = time.perf_counter()
        step()
        if compiled:
            print(f"  (torch.compile: the first step, compiling, took {time.perf_counter() - started:.0f} s)")
        steps[name] = step
    return steps


def interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, taken in turn, so that drift in machine load hits each alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def time_breakdown(fn) -> dict[str, float]:
    """Share of the profiled self time in each group of GROUPS (and 'other')."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    shares = dict.fromkeys([*GROUPS, "other"], 0.0)
    for event in prof.key_averages():
        group = next((g for g, pattern in GROUPS.items() if re.search(pattern, event.key)), "other")
        shares[group] += event.self_cpu_time_total
    total = sum(shares.values()) or 1.0
    return {group: value / total for group, value in shares.items()}


def startup_seconds(repeats: int = 3) -> float:
    """A fresh interpreter importing what a sampling job imports."""
    code = "import torch, torchvision, diffusers, gradcheck.guidance, gradcheck.commands.sample"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loading_seconds(repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        DDPMPipeline(unet=build_unet(UNetConfig(), SIZE), scheduler=build_scheduler(T)).save_pretrained(tmp + "/ddpm")
        save_classifier(tmp + "/guide.pt", build_classifier(4), ("a", "b", "c", "d"), SIZE, "clean")
        return {"DDPM pipeline (diffusers from_pretrained)": median_seconds(lambda: load_pipeline(tmp + "/ddpm",
                                                                                                  dtype="bfloat16"),
                                                                             repeats),
                "classifier (torch.load + torchvision)": median_seconds(lambda: load_classifier(tmp + "/guide.pt"),
                                                                        repeats)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads, as one workflow job (default 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-profile", action="store_true", help="skip the breakdown of each kernel's time")
    p.add_argument("--candidates", action="store_true", help="also time the candidate speed-ups (section 4)")
    p.add_argument("--compile", action="store_true",
                   help="with --candidates, also torch.compile (about two minutes of compiling on 2 cores)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{cpu_flags()}\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {a.repeats}\n")

    peaks = {name: gemm_peak(dtype, a.repeats) for name, dtype in (("bfloat16", torch.bfloat16),
                                                                      ("float32", torch.float32))}
    print("1. GEMM peak (2048^3)")
    for name, gflops in peaks.items():
        print(f"  {name:<10}{gflops:>8.0f} GFLOP/s")

    print(f"\n2. kernels{'':<39}{'GFLOP':>7}{'ms':>9}{'GFLOP/s':>9}{'of bf16 peak':>14}")
    runs = kernels()
    for name, (fn, note) in runs.items():
        work = kernel_flops(name, fn)
        seconds = median_seconds(fn, a.repeats)
        rate = work / seconds / 1e9
        print(f"  {name:<45}{work / 1e9:>7.1f}{seconds * 1e3:>9.1f}{rate:>9.0f}{rate / peaks['bfloat16']:>13.0%}"
              f"   ({note})")

    if not a.no_profile:
        print("\n3. where the time goes (share of profiled self time)")
        for name, (fn, _) in runs.items():
            shares = time_breakdown(fn)
            print(f"  {name}: " + ", ".join(f"{group} {share:.0%}" for group, share in shares.items()))

    if a.candidates:
        print("\n4. candidates for the DDPM training step, each against the trainer's step (interleaved)")
        medians = interleaved_medians(candidate_steps(a.compile), a.repeats)
        base = next(iter(medians.values()))
        for name, seconds in medians.items():
            print(f"  {name:<45}{seconds * 1e3:>9.1f} ms{seconds / base:>7.2f}x")
        print("   classifier training step, batch 128: channels-last against contiguous (interleaved)")
        for architecture in ARCHITECTURES:
            medians = interleaved_medians({layout: classifier_step(architecture, layout == "channels-last")
                                           for layout in ("contiguous", "channels-last")}, a.repeats)
            print(f"  {architecture:<45}{medians['contiguous'] * 1e3:>9.1f} ms{medians['channels-last'] * 1e3:>9.1f} ms"
                  f"{medians['channels-last'] / medians['contiguous']:>7.2f}x")

    print("\n5. a job's seconds outside compute")
    print(f"  {'interpreter and imports (a sampling job)':<45}{startup_seconds():>7.2f} s")
    for name, seconds in loading_seconds(a.repeats).items():
        print(f"  {name:<45}{seconds:>7.2f} s")


if __name__ == "__main__":
    main()
