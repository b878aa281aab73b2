"""scikit-learn's bundled handwritten digits as an image folder: a real data set for trying
``import-images`` without downloading anything.

``sklearn.datasets.load_digits`` ships 1,797 grayscale 8 x 8 images of the digits 0-9 with
pixel values 0..16 inside the package. :func:`export_digits` writes them in torchvision's
``ImageFolder`` layout, ``root/<digit>/<index>.png``, ``index`` being the image's position in
``load_digits`` (zero-padded, so that file order is numeric order).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from gradcheck.atomic import atomic_dir

DIGIT_CLASSES = tuple(str(d) for d in range(10))


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """The digits as (1797, 8, 8) uint8 images, 0..16 scaled to 0..255 and rounded, and their (1797,) labels."""
    from sklearn.datasets import load_digits  # lazy: only this command needs scikit-learn

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def export_digits(root: str | os.PathLike) -> int:
    """Write the digits as grayscale PNGs ``root/<digit>/<index>.png``; returns how many.

    ``root`` is written whole or not at all. It may not exist yet, be empty, or hold an
    earlier export (only the sub-folders 0-9), which is replaced; anything else is refused
    with a ValueError rather than deleted.
    """
    root = Path(root)
    if root.exists():
        if not root.is_dir():
            raise ValueError(f"not a folder: {root}")
        foreign = sorted(p.name for p in root.iterdir() if not (p.is_dir() and p.name in DIGIT_CLASSES))
        if foreign:
            raise ValueError(f"{root} already holds {foreign[:5]}{' ...' if len(foreign) > 5 else ''}; "
                             "give an empty or new folder")
    images, labels = digits_uint8()
    width = len(str(len(images) - 1))
    with atomic_dir(root) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary folder
        for digit in DIGIT_CLASSES:
            (tmp / digit).mkdir()
        for index, (image, label) in enumerate(zip(images, labels.tolist())):
            Image.fromarray(image).save(tmp / str(label) / f"{index:0{width}d}.png", format="PNG")
    return len(images)


def digit_counts(val_fraction: float = 0.1) -> dict[str, tuple[int, int]]:
    """digit -> (training, validation) image counts of the exported digits once imported with
    ``val_fraction``, as :func:`gradcheck.folder.scan_image_folder` would count them."""
    from gradcheck.folder import validation_count

    _, labels = digits_uint8()
    per_class = np.bincount(labels, minlength=len(DIGIT_CLASSES))
    return {digit: (int(n) - validation_count(int(n), val_fraction), validation_count(int(n), val_fraction))
            for digit, n in zip(DIGIT_CLASSES, per_class)}
