"""The file a sampling job writes: images, seeds and the gradient trace of one grid cell."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

_KEYS = ("images", "seeds", "seed_index", "timesteps", "cosine", "grad_norm", "term_norm", "eps_cosine",
         "judge_confidence", "record")


def load_samples(path: str | os.PathLike) -> dict:
    """Load a cell's .npz; ``record`` comes back as a dict. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"samples file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise ValueError(f"{path} is not a samples file (missing {', '.join(missing)})")
            out = {k: npz[k] for k in _KEYS}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"samples file {path} is corrupt: {exc}") from exc
    out["record"] = json.loads(str(out["record"]))
    return out
