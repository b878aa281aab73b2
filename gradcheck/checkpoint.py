"""Loading saved models with errors that say what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import CheckpointError


def load_torch(path: str | os.PathLike, kind: str) -> dict:
    """``torch.load`` a dict saved by this package, naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{kind} checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"{kind} checkpoint {path} is corrupt or unreadable: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        raise CheckpointError(f"{path} is not a {kind} checkpoint (kind={obj.get('kind') if isinstance(obj, dict) else type(obj).__name__})")
    return obj
