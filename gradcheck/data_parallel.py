"""Data parallelism over CPU cores: one process of few threads per share of the batch, gradients summed.

Two single-threaded processes keep their speed beside other work; one process of two threads does not
(OpenMP's barriers, hundreds a step, each need both cores at once: docs/configuration.md "Threads").
Data-parallel processes meet once a step, to sum their gradients, so they use a second core that one
single-threaded job leaves idle without that collapse.
"""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run_ranks(processes: int, target, *args):
    """``target(rank, *args)`` in ``processes`` ranks of one gloo group; returns rank 0's result.

    Rank 0 runs here; the others are spawned (a fork would inherit OpenMP's threads) and share the
    caller's torch threads between them. ``target`` must be a module-level function; ``args`` are
    pickled (tensors through shared memory).
    """
    if processes == 1:
        return target(0, *args)
    threads = max(1, torch.get_num_threads() // processes)
    previous = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="gradcheck-ranks-") as tmp:
        store = os.path.join(tmp, "store")
        context = mp.get_context("spawn")
        others = [context.Process(target=_rank, args=(rank, processes, store, threads, target, args), daemon=True)
                  for rank in range(1, processes)]
        for process in others:
            process.start()
        try:
            torch.set_num_threads(threads)
            _join_watching(others, processes, store)
            result = target(0, *args)
        finally:  # on an error here the others' next collective fails and they exit
            if dist.is_initialized():
                dist.destroy_process_group()
            torch.set_num_threads(previous)
            for process in others:
                process.join(timeout=60)
                if process.is_alive():
                    process.terminate()
        failed = {rank: p.exitcode for rank, p in enumerate(others, 1) if p.exitcode}
        if failed:
            raise RuntimeError(f"data-parallel rank(s) failed with exit codes {failed}; their errors are above")
        return result


def sum_across_ranks(parameters, *values: torch.Tensor) -> list[torch.Tensor]:
    """Sum every parameter's gradient and each of ``values`` over the ranks, in one collective.

    Every rank gets the same sums, so ranks that start alike stay alike. Returns the summed values.
    """
    params = [p for p in parameters if p.requires_grad]
    for p in params:
        if p.grad is None:  # unused by this rank's share: contributes nothing
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params] + [v.detach().float().reshape(-1) for v in values])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()
    return [flat[offset + i].reshape(()) for i in range(len(values))]


def _join(rank: int, processes: int, store: str) -> None:
    # the timeout bounds each collective too: a step and rank 0's checkpoint take seconds
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=processes,
                            timeout=timedelta(minutes=2))


def _join_watching(others, processes: int, store: str) -> None:
    """Rank 0 joins the group, and says so at once if another rank dies before joining."""
    error = []
    joining = threading.Thread(target=lambda: _capture(error, _join, 0, processes, store), daemon=True)
    joining.start()
    while joining.is_alive():
        joining.join(0.1)
        dead = {rank: p.exitcode for rank, p in enumerate(others, 1) if p.exitcode is not None}
        if dead and joining.is_alive():
            raise RuntimeError(f"data-parallel rank(s) exited before joining, with exit codes {dead}; "
                               "their errors are above")
    if error:
        raise error[0]


def _capture(error: list, fn, *args) -> None:
    try:
        fn(*args)
    except Exception as e:  # re-raised in the caller's thread
        error.append(e)


def _rank(rank, processes, store, threads, target, args):
    torch.set_num_threads(threads)
    _join(rank, processes, store)
    try:
        target(rank, *args)
    finally:
        dist.destroy_process_group()
