"""The DDPM's training step: one process of one or two threads, or two data-parallel processes of one thread.

Run:  python benchmarks/data_parallel.py [--steps 40]

Runs the real ``gradcheck.ddpm.train_ddpm`` on config.yaml's recipe (its UNet, batch 32, the precision
``auto`` picks here) on random images in a fresh process, and prints the median of its steps after the
first two (rank 0's, which wait for the other rank's) and its seconds outside steps (spawning the second
process, joining the group, the last checkpoint; imports excluded). Each way runs alone and beside ONE
busy single-threaded process (a Python loop: a browser tab, a colleague's script), in turn. Run it with
nothing else on the machine.

The two processes of ``ddpm.processes: 2`` meet once a step, to sum their gradients; one process of
two threads meets at every OpenMP barrier, hundreds a step, which is what collapses beside other work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from contention import busy_processes
from roofline import cpu_flags

TRAIN = r"""
import statistics, sys, tempfile, time, torch
import gradcheck.ddpm as ddpm
from gradcheck.settings import DDPMTrainConfig
threads, processes, steps = map(int, sys.argv[1:4])
torch.set_num_threads(threads)
images = torch.rand(2000, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
times, step = [], ddpm._training_step
def timed(*args):  # rank 0's steps, which wait for the other rank's at the gradients' sum
    start = time.perf_counter()
    loss = step(*args)
    times.append(time.perf_counter() - start)
    return loss
ddpm._training_step = timed
with tempfile.TemporaryDirectory() as work:
    start = time.perf_counter()
    ddpm.train_ddpm(images, work + "/ddpm", DDPMTrainConfig(processes=processes), torch.device("cpu"),
                    work + "/ckpt", stop_after=steps)
    total = time.perf_counter() - start
print(statistics.median(times[2:]), total - sum(times))
"""
WAYS = {"1 process, 1 thread": (1, 1), "1 process, 2 threads": (2, 1), "2 processes, 1 thread each": (2, 2)}


def train_seconds(threads: int, processes: int, steps: int, beside: int) -> tuple[float, float]:
    """The median step of train_ddpm (after two) and its seconds outside steps, beside ``beside`` busy processes."""
    with busy_processes(beside):
        out = subprocess.run([sys.executable, "-c", TRAIN, str(threads), str(processes), str(steps)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    step, outside = map(float, out.stdout.split()[-2:])
    return step, outside


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="steps per run; the median step after the first two")
    a = p.parse_args()
    from gradcheck.speed import resolve_precision

    print(f"{cpu_flags()}; {len(os.sched_getaffinity(0))} cores; config.yaml's DDPM step, batch 32, "
          f"{resolve_precision('auto', 'cpu')}; median of {a.steps - 2} steps\n")
    print(f"{'':<28}{'alone ms':>10}{'beside 1 busy ms':>18}{'x alone':>9}{'outside steps s':>17}")
    for name, (threads, processes) in WAYS.items():
        (alone, outside), (busy, _) = (train_seconds(threads, processes, a.steps, beside) for beside in (0, 1))
        print(f"{name:<28}{alone * 1e3:>10.0f}{busy * 1e3:>18.0f}{busy / alone:>9.2f}{outside:>17.1f}")


if __name__ == "__main__":
    main()
