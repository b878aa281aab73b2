"""Where the tensors go: CUDA when present, the CPU otherwise, and which card.

Snakemake counts GPUs (``--resources gpu=N``) but does not say which card a job gets.
A job that sees one card (SLURM sets ``CUDA_VISIBLE_DEVICES`` per job) uses it. A job
that sees several (a local run with N cards) claims one with an exclusive file lock,
held until the process exits, so N concurrent jobs land on N different cards.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)
_held_locks: list = []  # open lock files: closing one would release its card


def pick_device(requested: str = "auto") -> torch.device:
    """Resolve ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``; ``auto`` and ``cuda`` claim a free card."""
    if requested == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda" if requested == "auto" else requested)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available on this machine")
    if device.index is None:
        device = torch.device("cuda", claim_gpu(visible_gpu_ids(torch.cuda.device_count())))
    return device


def visible_gpu_ids(count: int) -> list[str]:
    """Names of the visible cards, as CUDA_VISIBLE_DEVICES gives them (or 0..count-1)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in env.split(",") if x.strip()] if env else [str(i) for i in range(count)]
    return ids[:count]


def claim_gpu(ids: list[str], lock_dir: str | os.PathLike | None = None, poll_seconds: float = 5.0) -> int:
    """Index (into ``ids``) of a card no other GradCheck process holds; waits while all are held."""
    if len(ids) <= 1:
        return 0
    lock_dir = Path(lock_dir or os.environ.get("GRADCHECK_GPU_LOCK_DIR", tempfile.gettempdir()))
    waited = False
    while True:
        for index, gpu in enumerate(ids):
            handle = open(lock_dir / f"gradcheck-gpu-{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_locks.append(handle)
            log.info("claimed GPU %s (visible index %d)", gpu, index)
            return index
        if not waited:
            log.warning("all %d visible GPUs are held by other jobs; waiting (is --resources gpu "
                        "larger than the number of cards?)", len(ids))
            waited = True
        time.sleep(poll_seconds)


def describe(device: torch.device) -> dict:
    """What a result was computed on, for the reproducibility record."""
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "host": platform.node(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_uuid"] = str(torch.cuda.get_device_properties(device).uuid)
        info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return info
