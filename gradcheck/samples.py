"""The file a sampling job writes: images, seeds and the gradient trace of one grid cell; its writer and readers."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from . import trace_quantities

# Besides every trace quantity of gradcheck.trace_quantities: those added after a samples file was written
# read as NaN (not measured), and compute not counted reads as absent (results format of 2026-12-02).
_BASE_KEYS = ("images", "seeds", "seed_index", "timesteps", "record")
COMPUTE = ("unet_forward", "unet_backward", "classifier_forward", "classifier_backward")


def save_samples(path: str | os.PathLike, images: np.ndarray, seeds: list[int], samples_per_seed: int,
                 timesteps: np.ndarray, trace: dict[str, np.ndarray], record: dict,
                 compute: dict[str, np.ndarray] | None = None) -> None:
    """Write a cell's .npz whole or not at all: uint8 images (N, H, W, C), each sample's generator seed,
    the index of its sampling seed, the trace's per-step arrays (steps x samples), the per-step compute
    counts of one sample (steps,) and the job's record."""
    compute = {f"compute_{name}": counts for name, counts in (compute or {}).items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, images=images, seeds=np.array(seeds),
                            seed_index=np.repeat(np.arange(len(seeds) // samples_per_seed), samples_per_seed),
                            timesteps=timesteps, record=np.array(json.dumps(record)), **trace, **compute)


def load_samples(path: str | os.PathLike) -> dict:
    """Load a cell's .npz; ``record`` comes back as a dict. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"samples file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            optional = trace_quantities.optional()
            keys = _BASE_KEYS + tuple(q for q in trace_quantities.stored() if q not in optional)
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise ValueError(f"{path} is not a samples file (missing {', '.join(missing)})")
            out = {k: npz[k] for k in keys}
            for k in optional:
                out[k] = npz[k] if k in npz.files else np.full_like(out["cosine"], np.nan)
            out["compute"] = {k: npz[f"compute_{k}"] for k in COMPUTE if f"compute_{k}" in npz.files} or None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"samples file {path} is corrupt: {exc}") from exc
    out["record"] = json.loads(str(out["record"]))
    return out


def _sample_axis() -> dict[str, int]:
    """Per-sample arrays with the samples on axis 0 (images, seeds) or on axis 1 (the trace: steps x samples)."""
    return {"images": 0, "seeds": 0, "seed_index": 0, **{q: 1 for q in trace_quantities.stored()}}


def load_replicates(paths: list[str | os.PathLike]) -> dict:
    """One cell's samples from every training replicate (``paths`` in replicate order), concatenated.

    Adds ``replicate`` (the position of each sample's file in ``paths``) and ``records`` (each file's
    record); ``record`` is the first file's. The files must be the same cell: the same settings and steps.
    """
    if not paths:
        raise ValueError("no samples files given")
    loaded = [load_samples(p) for p in paths]
    first = loaded[0]
    for path, other in zip(paths[1:], loaded[1:]):
        if other["record"]["settings"] != first["record"]["settings"]:
            raise ValueError(f"{path} is not the same cell as {paths[0]}: its guidance settings differ")
        if not np.array_equal(other["timesteps"], first["timesteps"]):
            raise ValueError(f"{path} samples other timesteps than {paths[0]}")
    out = {key: np.concatenate([s[key] for s in loaded], axis=axis) for key, axis in _sample_axis().items()}
    out["replicate"] = np.concatenate([np.full(len(s["seeds"]), r) for r, s in enumerate(loaded)])
    out["timesteps"], out["record"], out["records"] = first["timesteps"], first["record"], [s["record"] for s in loaded]
    out["compute"] = first["compute"]  # per sample, the same in every replicate of a cell
    return out
