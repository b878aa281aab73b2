"""``gradcheck``: one subcommand per workflow step, explicit inputs and outputs, logs on stderr.

Every Snakemake rule is a thin call of one of these; none of them knows about Snakemake. The
commands live in gradcheck/commands/, one module per workflow stage; this module registers them.
Errors caused by bad input exit with status 2 and a one-line message naming it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .commands import (data, evaluate, methods, register, report, sample, sensitivity, spread, stabilisers,
                       train)

log = logging.getLogger("gradcheck")
STAGES = (data, train, sample, evaluate, report, sensitivity, methods, spread, stabilisers)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gradcheck",
        description="GradCheck: analyse classifier-guidance gradients in diffusion models. "
        "One subcommand per workflow step; `gradcheck COMMAND --help` explains its options.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        register(sub, stage)
    for command in sub.choices.values():
        command.add_argument("--threads", type=int, default=0,
                             help="torch CPU threads (0: OMP_NUM_THREADS where set, as Snakemake sets it to a "
                                  "job's threads; else every core this process may use)")
    return p


def set_threads(threads: int) -> None:
    """Use the cores we were given, never more: a job with more torch threads than free cores
    slows several-fold beside any other busy process (docs/configuration.md, "Threads").

    Without ``--threads``, OMP_NUM_THREADS where set (Snakemake sets it to a job's `threads`), else
    the affinity mask, which respects what SLURM or taskset allotted to this process. torch reads
    OMP_NUM_THREADS when first imported, so commands that never import it (the figures)
    start without paying for it.
    """
    if threads < 0:
        raise ValueError(f"--threads must be 0 or positive, got {threads}")
    granted = os.environ.get("OMP_NUM_THREADS", "")
    count = threads or (int(granted) if granted.isdigit() and int(granted) > 0 else len(os.sched_getaffinity(0)))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(count)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .errors import CheckpointError, GuidanceError

    try:
        set_threads(args.threads)
        args.func(args)
    except (ValueError, FileNotFoundError, CheckpointError, GuidanceError) as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
