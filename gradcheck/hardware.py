"""What this host offers the workflow's jobs, read without importing torch (the plan is built at parse time).

The ``gpu`` resource exists to keep jobs from sharing a card. On a host without one it would only
queue CPU jobs behind each other and leave cores idle, so there a job asks for no token, and
``--resources gpu=1`` (the users' command, and the default profile's) changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per card the NVIDIA driver sees (Linux)


def cuda_visible(gpus_dir: Path = NVIDIA_GPUS) -> bool:
    """Whether a job started here could see a CUDA card: the driver lists one and CUDA_VISIBLE_DEVICES
    does not hide them all (an empty value, or -1, does)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return gpus_dir.is_dir() and any(gpus_dir.iterdir())


def job_gpus(device: str, gpus_dir: Path = NVIDIA_GPUS) -> int:
    """The ``gpu`` tokens a torch job holds: one where it runs on CUDA (``auto`` with a card here, or
    ``cuda``), none on the CPU. A cluster profile's ``set-resources`` overrides this per rule."""
    if device == "cpu":
        return 0
    return int(device.startswith("cuda") or cuda_visible(gpus_dir))


def job_threads(threads_per_job: int, cores: int | None) -> int:
    """The cores a torch job asks Snakemake for (and then uses as its torch threads, never more):
    ``threads_per_job``, or with 0 every core of ``--cores`` (capped at this host's)."""
    if threads_per_job:
        return threads_per_job
    host = len(os.sched_getaffinity(0))
    return min(cores, host) if cores else host
