"""A user's image folder as a data set: the same arrays as SportBalls, so every later step works unchanged.

The folder has torchvision's ``ImageFolder`` layout, one sub-folder per class::

    root/cat/001.png
    root/cat/more/002.jpg     (sub-folders of a class are searched too)
    root/dog/xyz.jpeg

Discovery is torchvision's own: :func:`torchvision.datasets.folder.find_classes` orders the
classes (label i is the i-th sub-folder name in sorted order), and only files whose names end
in one of :data:`~torchvision.datasets.folder.IMG_EXTENSIONS` (any case) are images; anything
else is skipped, as ``ImageFolder`` skips it. Images are read with torchvision's default
loader, which converts every image to RGB (grayscale is repeated over the channels; an alpha
channel is dropped, not composited), and are resized to ``image_size`` x ``image_size``
without keeping the aspect ratio (no crop).

Each class keeps a held-out validation share, chosen by ``seed`` from the class's files in
ImageFolder's (sorted) order and keyed by the class's name, so adding a class does not change
another's split. The result depends only on the folder's contents, ``image_size``,
``val_fraction`` and ``seed``: the same inputs give byte-identical arrays.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from gradcheck.data import FOLDER_SOURCE_PREFIX

# Pillow's BILINEAR is a triangle filter whose support widens with the reduction factor, so
# down-scaling averages over each output pixel's whole footprint (anti-aliased, like an area
# average) while up-scaling (e.g. 8 px digits to 32 px) interpolates smoothly. Its kernel is
# never negative, so unlike LANCZOS or BICUBIC it cannot overshoot: no ringing halos around
# edges on flat (e.g. white) backgrounds. One filter for both directions keeps it simple.
RESAMPLE = Image.Resampling.BILINEAR
MAX_LISTED = 20  # unreadable files named in one error; the rest are counted

_TRAIN, _VAL = 0, 1  # SeedSequence streams of the final shuffles


def folder_source(folder: str | os.PathLike) -> str:
    """The ``source`` that :func:`gradcheck.data.save_dataset` stores for data read from ``folder``."""
    return FOLDER_SOURCE_PREFIX + str(Path(folder).resolve())


def validation_count(n: int, val_fraction: float) -> int:
    """Validation images of a class of ``n`` images: ``val_fraction * n`` rounded half up, but at
    least one and leaving at least one for training (``n`` must be at least 2)."""
    return min(max(1, math.floor(val_fraction * n + 0.5)), n - 1)


def load_image(path: str | os.PathLike, image_size: int, loader=None) -> np.ndarray:
    """One image file as an (image_size, image_size, 3) uint8 RGB array, or a ValueError naming it."""
    from torchvision.datasets.folder import default_loader

    try:
        image = (loader or default_loader)(str(path))
        image = image.convert("RGB")  # the default loader has already; a custom one may not
        resized = image.resize((image_size, image_size), RESAMPLE)
        return np.asarray(resized, dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        # OSError includes PIL.UnidentifiedImageError and truncated files
        raise ValueError(f"cannot read image {path}: {err}") from None


def _verify_error(path: str) -> str | None:
    """Why Pillow cannot verify ``path`` (its structure and, for PNG, every chunk's checksum), or None."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return str(err) or type(err).__name__
    return None


def check_val_fraction(val_fraction) -> None:
    if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")


def _class_files(folder: str | os.PathLike) -> tuple[ImageFolder, list[list[str]]]:
    """torchvision's ImageFolder of ``folder`` and each class's image paths, or a ValueError
    naming the folder when it is missing, has fewer than two classes or a class with fewer than 2 images."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}" if not folder.exists()
                         else f"not a folder: {folder}")
    try:
        names = find_classes(folder)[0]
    except FileNotFoundError:  # torchvision: no sub-folder at all
        names = []
    if len(names) < 2:
        raise ValueError(f"{folder} has {len(names)} class sub-folder{'s' if len(names) != 1 else ''} "
                         f"{names}; need at least 2 (layout: {folder}/<class>/<image>)")
    # allow_empty: an empty class is reported below with its count, as any class with too few
    dataset = ImageFolder(folder, allow_empty=True)
    assert list(dataset.classes) == names  # ImageFolder uses find_classes: the same order
    by_class: list[list[str]] = [[] for _ in names]
    for path, label in dataset.samples:  # sorted by class, then by path within a class
        by_class[label].append(path)
    few = [(name, len(paths)) for name, paths in zip(names, by_class) if len(paths) < 2]
    if few:
        listed = ", ".join(f"{name!r} has {n}" for name, n in few)
        raise ValueError(f"{folder}: every class needs at least 2 images (1 for validation, 1 for training); "
                         f"{listed} (image files end in {', '.join(IMG_EXTENSIONS)})")
    return dataset, by_class


def scan_image_folder(folder: str | os.PathLike, val_fraction: float = 0.1,
                      check_headers: bool = True) -> dict[str, tuple[int, int]]:
    """class name -> (training, validation) image counts that :func:`read_image_folder` will give,
    without decoding any image: quick enough to check a folder before a workflow starts.

    Raises the ValueErrors of :func:`read_image_folder` for the folder's layout and, with
    ``check_headers``, one naming every file that Pillow cannot verify: not an image, or (PNG, whose
    chunks carry checksums) a truncated or corrupt one. A JPEG's body is only checked when it is read.
    """
    check_val_fraction(val_fraction)
    dataset, by_class = _class_files(folder)
    if check_headers:
        bad = [f"cannot read image {path}: {err}" for paths in by_class for path in paths
               if (err := _verify_error(path)) is not None]
        if bad:
            shown = bad[:MAX_LISTED] + ([f"... and {len(bad) - MAX_LISTED} more"] if len(bad) > MAX_LISTED else [])
            raise ValueError(f"{len(bad)} unreadable image file{'s' if len(bad) > 1 else ''} in {folder}:\n  "
                             + "\n  ".join(shown))
    counts = {}
    for name, paths in zip(dataset.classes, by_class):
        n_val = validation_count(len(paths), val_fraction)
        counts[name] = (len(paths) - n_val, n_val)
    return counts


def read_image_folder(folder: str | os.PathLike, image_size: int, val_fraction: float = 0.1,
                      seed: int = 0) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Read an ImageFolder-layout directory into the arrays :func:`gradcheck.data.save_dataset` takes.

    Returns ``(data, classes)``: ``data`` has train_images / val_images (N, image_size,
    image_size, 3) uint8 RGB and train_labels / val_labels (N,) int64, label i meaning
    ``classes[i]``, the i-th class sub-folder in torchvision's sorted order. Per class,
    :func:`validation_count` images go to validation, drawn with ``seed``; each split is then
    shuffled (also by ``seed``), as SportBalls' are. Save with ``save_dataset(path, data,
    seed=seed, size=image_size, classes=classes, source=folder_source(folder))``.

    Raises ValueError naming the folder, file or class when the folder does not exist, has
    fewer than two classes, holds an image that cannot be read, or a class with too few
    images for the split.
    """
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    check_val_fraction(val_fraction)
    dataset, by_class = _class_files(folder)
    classes = tuple(dataset.classes)

    picked: dict[int, list[tuple[str, int]]] = {_TRAIN: [], _VAL: []}
    for label, (name, paths) in enumerate(zip(classes, by_class)):
        # keyed by the class's name, not its label: a new class leaves the others' splits alone
        key = zlib.crc32(name.encode("utf-8", "surrogateescape"))
        order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, key))).permutation(len(paths))
        n_val = validation_count(len(paths), val_fraction)
        picked[_VAL] += [(paths[i], label) for i in sorted(order[:n_val].tolist())]
        picked[_TRAIN] += [(paths[i], label) for i in sorted(order[n_val:].tolist())]

    data: dict[str, np.ndarray] = {}
    for stream, split in ((_TRAIN, "train"), (_VAL, "val")):
        items = picked[stream]
        shuffle = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, stream))).permutation(len(items))
        images = np.empty((len(items), image_size, image_size, 3), dtype=np.uint8)
        labels = np.empty(len(items), dtype=np.int64)
        for i, j in enumerate(shuffle.tolist()):
            path, label = items[j]
            images[i] = load_image(path, image_size, dataset.loader)
            labels[i] = label
        data[f"{split}_images"], data[f"{split}_labels"] = images, labels
    return data, classes


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A short hash of the folder's image files (relative path, size, modification time): it
    changes when an image is added, removed or rewritten, so a workflow can re-import then."""
    import hashlib

    dataset, _ = _class_files(folder)
    root = Path(folder).expanduser()
    digest = hashlib.sha256()
    for path, _label in dataset.samples:
        stat = os.stat(path)
        digest.update(f"{Path(path).relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
