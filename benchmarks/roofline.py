"""How near the hardware the workflow's kernels run, and what a job spends outside them.

Run:  python benchmarks/roofline.py [--threads 1] [--repeats 5] [--no-profile] [--candidates [--compile]]

On whatever machine runs it, in this one run:
1. the CPU's bfloat16 and float32 GEMM peak (a 2048^3 matrix product; ``lscpu``'s AMX / AVX-512
   flags printed beside it, since they decide the bfloat16 peak);
2. the achieved GFLOP/s of the kernels that make a default run's time, with FLOPs counted by
   ``torch.utils.flop_counter`` (matrix products and convolutions; element-wise work counts none),
   each as a share of the measured GEMM peak of the precision it runs in. The UNet runs in the precision
   ``auto`` picks on this CPU, as the workflow does: bfloat16 where oneDNN has bfloat16 kernels (AVX-512,
   AMX), float32 elsewhere (an AVX2-only CPU, where bfloat16 falls back to reference loops);
   - a DDPM training step (config.yaml's UNet, batch 32, autocast as above, AdamW), as the trainer runs it;
   - a sampling step's UNet forward (weights as above, batch 96, no gradient), as an x_t cell runs it;
   - an x0-hat step (UNet forward, x0-hat, the guide's forward, the backward through both; batch 96);
   - a guide's training step (MobileNetV3, batch 128, float32, channels-last, AdamW), as the trainer runs it,
     counted as 3x its forward (the FLOP counter counts a depthwise convolution's backward as a dense one);
3. with the profile, where each kernel's time goes: convolutions, dtype copies, GroupNorm, SiLU, the rest;
4. with ``--candidates``, speed-ups of the training step, each timed against the trainer's own step: float16
   autocast (where oneDNN has float16 kernels), channels-last (oneDNN's preferred layout for bfloat16 convolutions), channels-last with
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
from gradcheck.speed import attention_kernel, input_layout, resolve_precision, to_classifier_layout

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


def kernels(precision: str = "auto"):
    """name -> (function, note): the kernels of a default run, built as the workflow runs them, the UNet
    in ``precision`` (bfloat16: autocast while training, bfloat16 weights while sampling; auto: as the workflow)."""
    precision = resolve_precision(precision, torch.device("cpu"))
    bf16 = precision == "bfloat16"
    dtype = getattr(torch, precision)
    torch.manual_seed(0)
    unet_config = UNetConfig()  # the settings' defaults are config.yaml's UNet
    scheduler = build_scheduler(T, scale_betas=True)

    train_unet = build_unet(unet_config, SIZE).train()
    optimizer = torch.optim.AdamW(train_unet.parameters(), lr=1e-4)
    x32, noise32, t32 = torch.randn(32, 3, SIZE, SIZE), torch.randn(32, 3, SIZE, SIZE), torch.randint(0, T, (32,))

    def training_step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), attention_kernel(torch.device("cpu"), dtype):
            pred = train_unet(x32, t32).sample
        loss = F.mse_loss(pred.float(), noise32)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    unet = build_unet(unet_config, SIZE).to(dtype).eval().requires_grad_(False)
    x96, t = torch.randn(96, 3, SIZE, SIZE), torch.tensor(T // 2)
    guide = to_classifier_layout(build_classifier(4).eval().requires_grad_(False), torch.device("cpu"))
    settings = GuidanceSettings(scale=0.5, target=0, x0_hat=True)
    alpha_bar = scheduler.alphas_cumprod[t]

    def unet_forward():
        with torch.no_grad():
            unet(x96.to(dtype), t)

    # a float32 UNet gets the leaf itself (a bfloat16 one a cast copy), and FlopCounterMode's module hooks fail on
    # autograd.grad of a module's leaf input (torch 2.14): there the step runs behind a copy, 0.3 MB
    stepped = unet if bf16 else _CopiedInput(unet)

    def x0_hat_step():
        noise_and_gradient(stepped, guide, x96.contiguous(memory_format=input_layout(guide)), t, alpha_bar, settings)

    return {
        "DDPM training step, batch 32": (training_step, f"{'bfloat16 autocast' if bf16 else 'float32'}, AdamW"),
        "sampling: UNet forward, batch 96": (unet_forward, f"{precision} weights"),
        "x0-hat step: forward + backward, batch 96": (x0_hat_step, f"UNet and guide, {precision} UNet"),
        "guide training step, batch 128": (classifier_step("mobilenet_v3_small", channels_last=True),
                                           "MobileNetV3, float32, channels-last, AdamW; FLOPs: 3x its forward"),
    }


class _CopiedInput:
    """A UNet that gets a copy of its input, as a bfloat16 UNet gets its cast."""

    def __init__(self, unet):
        self.unet = unet

    def parameters(self):
        return self.unet.parameters()

    def __call__(self, x, t):
        return self.unet(x.clone(), t)


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
    """name -> a DDPM training step under one candidate speed-up (the trainer's step, in the precision
    ``auto`` picks here, is the first). Reduced precisions only where oneDNN has kernels for them: without,
    a step takes minutes."""
    x, noise, t = torch.randn(32, 3, SIZE, SIZE), torch.randn(32, 3, SIZE, SIZE), torch.randint(0, T, (32,))
    precision = resolve_precision("auto", torch.device("cpu"))
    dtype = torch.bfloat16 if precision == "bfloat16" else None  # None: no autocast, float32
    label = "bfloat16 autocast" if dtype else "float32"
    variants = {f"as the trainer ({label}, contiguous)": (dtype, False, False, False)}
    if torch.ops.mkldnn._is_mkldnn_fp16_supported():
        variants["float16 autocast"] = (torch.float16, False, False, False)
    variants["channels-last"] = (dtype, True, False, False)
    variants["channels-last, GroupNorm contiguous"] = (dtype, True, True, False)
    if compile_too:
        variants["torch.compile (inductor)"] = (dtype, False, False, True)
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
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
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
                                                                                                  dtype="auto"),
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

    precision = resolve_precision("auto", torch.device("cpu"))  # the workflow's default on this CPU
    # without bfloat16 kernels a 2048^3 product takes tens of seconds: a 512^3 one tells as much
    bf16_n = 2048 if precision == "bfloat16" else 512
    peaks = {"bfloat16": gemm_peak(torch.bfloat16, a.repeats, bf16_n), "float32": gemm_peak(torch.float32, a.repeats)}
    print("1. GEMM peak (2048^3)")
    for name, gflops in peaks.items():
        print(f"  {name:<10}{gflops:>8.1f} GFLOP/s" + ("" if name != "bfloat16" or bf16_n == 2048 else
                                                    "   (512^3: no bfloat16 kernels on this CPU)"))

    print(f"\n2. kernels, the UNet in {precision} (the workflow's 'auto' here){'':<2}"
          f"{'GFLOP':>7}{'ms':>9}{'GFLOP/s':>9}{'of peak':>9}")
    runs = kernels(precision)
    for name, (fn, note) in runs.items():
        work = kernel_flops(name, fn)
        seconds = median_seconds(fn, a.repeats)
        rate = work / seconds / 1e9
        # the guide trains in float32 whatever the UNet's precision
        peak = peaks["float32" if name.startswith("guide") else precision]
        print(f"  {name:<45}{work / 1e9:>7.1f}{seconds * 1e3:>9.1f}{rate:>9.0f}{rate / peak:>8.0%}   ({note})")

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
