"""A whole workflow run, alone and beside one busy process: what other work on the machine costs a run.

Run:  python benchmarks/run_contention.py [--cores 2] [--scale small] [--order alone busy alone]

Runs ``snakemake --cores N`` on config.yaml's recipe, shrunk (``--scale``) so that a run takes minutes
rather than an hour, in a fresh directory each time: alone, and beside ONE busy single-threaded process
(a Python loop: a browser tab, a colleague's script). ``--order`` repeats the runs in turn, so that drift
in the machine's speed shows. Prints each run's wall time and each busy run's ratio to the mean of the
runs alone. Run it with nothing else on the machine.

The shrunk recipe keeps the default's shape (3 replicates, one shared DDPM, the whole grid and ablation,
one thread per job) and cuts its lengths: DDPM steps, classifier epochs, samples and sampling steps. Its
jobs are shorter, so start-up (about 6 s a job) is a larger share of its time than of the default's.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BUSY = "while True: pass"
SCALES = {  # overlays of config.yaml: each keeps the default's jobs, shorter
    "small": {"data": {"train_per_class": 200, "val_per_class": 50},
              "ddpm": {"steps": 40, "snapshot_every": 20, "checkpoint_every": 20, "warmup_steps": 4},
              "classifiers": {"epochs": 1},
              "sampling": {"num_samples": 8, "batch_size": 24, "steps": 20, "judge_every": 5},
              "metrics": {"n_boot": 100}},
}


def run_seconds(cores: int, overlay: dict, busy: bool) -> float:
    """Wall seconds of one whole run in a fresh directory, beside a busy process if ``busy``."""
    spinner = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as work:
            (Path(work) / "overlay.yaml").write_text(yaml.safe_dump(overlay))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", work,
                            "--cores", str(cores), "--quiet", "--configfile", str(REPO / "config.yaml"),
                            str(Path(work) / "overlay.yaml")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            return time.perf_counter() - start
    except subprocess.CalledProcessError as exc:
        sys.exit(f"the run failed:\n{exc.stderr[-3000:]}")
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    p.add_argument("--scale", choices=SCALES, default="small")
    p.add_argument("--order", nargs="+", choices=["alone", "busy"], default=["alone", "busy", "alone"])
    a = p.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from roofline import cpu_flags

    print(f"{cpu_flags()}\nsnakemake --cores {a.cores}, config.yaml shrunk ({a.scale}); one run at a time\n")
    times: dict[str, list[float]] = {"alone": [], "busy": []}
    for kind in a.order:
        seconds = run_seconds(a.cores, SCALES[a.scale], busy=kind == "busy")
        times[kind].append(seconds)
        print(f"  {'beside 1 busy process' if kind == 'busy' else 'alone':<24}{seconds:>8.1f} s", flush=True)
    if times["alone"] and times["busy"]:
        alone = statistics.mean(times["alone"])
        print(f"\nbeside 1 busy process: {', '.join(f'{s / alone:.2f}x' for s in times['busy'])} "
              f"the mean run alone ({alone:.1f} s)")


if __name__ == "__main__":
    main()
