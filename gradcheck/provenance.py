"""The reproducibility record: which config, code, packages and devices produced a result."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGES = ("torch", "torchvision", "diffusers", "torchmetrics", "torch-fidelity", "snakemake",
            "snakemake-executor-plugin-slurm", "numpy", "scipy", "pandas", "matplotlib", "pillow")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: str | os.PathLike) -> dict:
    """Commit and whether the work tree differs from it; None outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout
    try:
        return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(git("status", "--porcelain").strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def job_devices(paths: list[str | os.PathLike]) -> dict[str, dict]:
    """The ``device`` entry each job wrote into its JSON or samples record."""
    from .samples import load_samples

    from .pretrained import PRETRAINED_JSON

    found = {}
    for path in map(Path, paths):
        if path.is_dir():  # a DDPM directory: trained (training.json) or brought (pretrained.json)
            path = path / (PRETRAINED_JSON if (path / PRETRAINED_JSON).is_file() else "training.json")
        record = load_samples(path)["record"] if path.suffix == ".npz" else json.loads(path.read_text())
        found[str(path)] = record.get("device")
    return found


def model_records(models: dict[str, str | os.PathLike]) -> dict[str, dict]:
    """name -> {"path", "sha256", "origin": "trained" | "brought", ...} (see gradcheck.pretrained.model_record)."""
    from .pretrained import model_record

    return {name: model_record(path) for name, path in models.items()}


def run_record(config: dict, repo: str | os.PathLike, job_outputs: list[str | os.PathLike],
               models: dict[str, str | os.PathLike] | None = None) -> dict:
    record = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "config": config, "git": git_state(repo), "packages": package_versions(),
              "python": sys.version.split()[0], "platform": platform.platform(), "jobs": job_devices(job_outputs)}
    if models is not None:
        record["models"] = model_records(models)
    return record
