"""What other work on the machine does to a job's speed, by its torch threads.

Run:  python benchmarks/contention.py [--seconds 12] [--threads 1 2]

Times a DDPM training step (config.yaml's UNet, batch 32, in the precision ``auto`` picks on this CPU,
bfloat16 autocast where oneDNN has bfloat16 kernels and float32 elsewhere; AdamW: the step that
makes most of a default run's time) in a fresh process, for each thread count: alone; beside ONE busy
single-threaded process (a Python loop: a browser tab, a colleague's script, another job); and, for one
thread, two such jobs side by side (how the workflow runs them with ``--cores 2``). Each figure is the
median step over ``--seconds`` of stepping, after two warm-up steps. Run it with nothing else on the
machine: the busy process is the only other work it should see.

On a machine with C cores a job with C threads needs every core at every OpenMP barrier (a small UNet
step has hundreds); one busy process then stalls all of them. A job with fewer threads than free cores
keeps its speed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time

STEP = r"""
import statistics, sys, time, torch
import torch.nn.functional as F
from gradcheck.ddpm import UNetConfig, build_unet
from gradcheck.speed import resolve_precision
torch.set_num_threads(int(sys.argv[1]))
bf16 = resolve_precision("auto", "cpu") == "bfloat16"
torch.manual_seed(0)
unet = build_unet(UNetConfig(), 32)
optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
x, noise, t = torch.randn(32, 3, 32, 32), torch.randn(32, 3, 32, 32), torch.randint(0, 400, (32,))
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        pred = unet(x, t).sample
    loss = F.mse_loss(pred.float(), noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
step(); step()
times, end = [], time.time() + float(sys.argv[2])
while time.time() < end:
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
print(statistics.median(times))
"""
BUSY = "while True: pass"


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` busy single-threaded processes, running while the block does."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(count)]
    try:
        time.sleep(0.5 if busy else 0)
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def step_seconds(threads: int, seconds: float, beside: int = 0, parallel: int = 1) -> list[float]:
    """Median step of each of ``parallel`` jobs with ``threads`` threads, beside ``beside`` busy processes."""
    with busy_processes(beside):
        jobs = [subprocess.Popen([sys.executable, "-c", STEP, str(threads), str(seconds)], stdout=subprocess.PIPE,
                                 text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
                for _ in range(parallel)]
        return [float(job.communicate()[0]) for job in jobs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=12.0, help="stepping time per measurement")
    p.add_argument("--threads", type=int, nargs="+", default=[len(os.sched_getaffinity(0)), 1])
    a = p.parse_args()
    from gradcheck.speed import resolve_precision

    precision = {"bfloat16": "bfloat16 autocast", "float32": "float32"}[resolve_precision("auto", "cpu")]
    print(f"{len(os.sched_getaffinity(0))} cores; DDPM training step, config.yaml's UNet, batch 32, {precision}\n")
    print(f"{'threads':>8}{'alone ms':>10}{'beside 1 busy ms':>18}{'x alone':>9}{'steps/s alone':>15}")
    for threads in a.threads:
        alone = step_seconds(threads, a.seconds)[0]
        beside = step_seconds(threads, a.seconds, beside=1)[0]
        print(f"{threads:>8}{alone * 1e3:>10.0f}{beside * 1e3:>18.0f}{beside / alone:>9.2f}{1 / alone:>15.2f}")
    print()
    for beside in (0, 1):
        pair = step_seconds(1, a.seconds, beside=beside, parallel=2)
        print(f"two 1-thread jobs side by side{', beside 1 busy' if beside else ''}: "
              f"{' and '.join(f'{s * 1e3:.0f}' for s in pair)} ms a step ({2 / max(pair):.2f} steps/s together)")


if __name__ == "__main__":
    main()
