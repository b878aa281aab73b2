"""SportBalls: the paper's synthetic data set (Appendix A), drawn procedurally.

One sport ball per image on a white background, at a random position (always fully
inside the image), rotation and scale. The classes share shape and size distribution
and differ only in colour and pattern, as in the paper. The paper used Freepik icons; we
draw look-alikes with PIL so that no image file is needed.

The class set (any two or more of :data:`BALLS`, in any order: label i is ``classes[i]``)
and the range of ball diameters are options; the defaults :data:`CLASSES` and
:data:`SCALE_RANGE` give this project's data set. The authors' variant is
``classes=("baseball", "basketball", "volleyball", "soccer"), scale_range=(0.15, 0.40)``.

Every image has its own random generator derived from (seed, split, ball, j) with
``numpy.random.SeedSequence``, where ball is the ball's index in :data:`BALLS` (not its
label): the j-th ball of a kind is the same whatever the number of images asked for or
the class order, so a larger data set is a superset of a smaller one.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gradcheck.atomic import atomic_path
from gradcheck.settings import BALLS, CLASSES, SCALE_RANGE  # the data set's allowed and default values

if TYPE_CHECKING:
    import torch


SUPERSAMPLE = 4  # draw at 4x and box-filter down: anti-aliasing without spill past the ball
MARGIN = 1.0  # px between the ball and the image edge, so the 1-px frame stays white

_TRAIN, _VAL = 0, 1  # SeedSequence streams: train and validation never share a generator
_WHITE = (255, 255, 255)
_ARRAY_KEYS = ("train_images", "train_labels", "val_images", "val_labels")

# Where a data set file's images came from, stored as its ``source``: drawn by make-data, or
# read from a user's image folder (gradcheck.folder), whose class names are the sub-folders'.
SPORTBALLS_SOURCE = "sportballs"
FOLDER_SOURCE_PREFIX = "folder:"  # followed by the folder's absolute path


def check_classes(classes) -> tuple[str, ...]:
    """``classes`` as a tuple of names, or a ValueError naming what is wrong with it."""
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise ValueError(f"classes must be a list of ball names, got {classes!r}")
    names = tuple(str(c) for c in classes)
    for name in names:
        if name not in BALLS:
            raise ValueError(f"unknown class {name!r}; valid classes: {', '.join(BALLS)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate class {', '.join(map(repr, duplicates))} in classes {list(names)}")
    if len(names) < 2:
        raise ValueError(f"need at least 2 classes, got {list(names)}")
    return names


def check_scale_range(scale_range, size: int | None = None) -> tuple[float, float]:
    """(low, high) ball diameters as fractions of the image side: 0 < low <= high <= 1, and at
    ``size`` px the largest ball must leave the MARGIN free on both sides."""
    try:
        low, high = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        raise ValueError(f"scale_range must be two numbers (low, high), got {scale_range!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high <= 1):
        raise ValueError(f"scale_range must satisfy 0 < low <= high <= 1, got {scale_range!r}")
    if size is not None and high * size > size - 2 * MARGIN + 1e-9:
        raise ValueError(f"scale_range high {high:g} leaves no {MARGIN:g} px margin at {size} px "
                         f"(at most {(size - 2 * MARGIN) / size:g}), got {scale_range!r}")
    return low, high


def check_source(source) -> str:
    """``source`` as a string: :data:`SPORTBALLS_SOURCE`, or :data:`FOLDER_SOURCE_PREFIX` and a path."""
    if isinstance(source, np.ndarray) and source.ndim == 0:
        source = source.item()
    folder = isinstance(source, str) and source.startswith(FOLDER_SOURCE_PREFIX) and source != FOLDER_SOURCE_PREFIX
    if not (source == SPORTBALLS_SOURCE or folder):
        raise ValueError(f"source must be {SPORTBALLS_SOURCE!r} or '{FOLDER_SOURCE_PREFIX}<path>', got {source!r}")
    return source


def check_class_names(classes) -> tuple[str, ...]:
    """Class names of a data set read from a folder: two or more distinct non-empty names."""
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise ValueError(f"classes must be a list of class names, got {classes!r}")
    names = tuple(str(c) for c in classes)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate class {', '.join(map(repr, duplicates))} in classes {list(names)}")
    if "" in names:
        raise ValueError(f"empty class name in classes {list(names)}")
    if len(names) < 2:
        raise ValueError(f"need at least 2 classes, got {list(names)}")
    return names


# --- drawing -------------------------------------------------------------------------
# Patterns are described in the ball's own unit-disc coordinates; ``_Ball.pt`` rotates
# and scales them onto the canvas, and the disc mask clips whatever spills outside.


class _Ball:
    def __init__(self, cx: float, cy: float, radius: float, angle: float):
        self.cx, self.cy, self.r = cx, cy, radius
        self.cos, self.sin = np.cos(angle), np.sin(angle)

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + self.r * (x * self.cos - y * self.sin), self.cy + self.r * (x * self.sin + y * self.cos))

    def px(self, fraction: float) -> int:
        """A stroke width given as a fraction of the diameter (at least one canvas px)."""
        return max(1, round(2 * self.r * fraction))

    def circle(self, draw: ImageDraw.ImageDraw, x: float, y: float, radius: float, **kw) -> None:
        cx, cy = self.pt(x, y)
        rr = self.r * radius
        draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), **kw)


def _seam_points(side: float, step: float) -> np.ndarray:
    """Points along a baseball seam, where its stitches go (unit-disc coords).

    Baseball and tennis seams are both arcs of a unit circle centred at (side * 1.35, 0),
    kept where they lie inside the ball, so that the two seams bow towards the centre.
    """
    phi = np.arange(0.0, 2 * np.pi, step)
    pts = np.stack([side * 1.35 + np.cos(phi), np.sin(phi)], axis=1)
    return pts[np.hypot(pts[:, 0], pts[:, 1]) < 0.93]


def _basketball(d: ImageDraw.ImageDraw, b: _Ball) -> None:
    black, w = (25, 20, 20), b.px(0.065)
    d.line([b.pt(-1, 0), b.pt(1, 0)], fill=black, width=w)
    d.line([b.pt(0, -1), b.pt(0, 1)], fill=black, width=w)
    for side in (-1, 1):  # the two side curves, clipped to the disc by the mask
        b.circle(d, side * 1.3, 0, 0.95, outline=black, width=w)


def _soccer(d: ImageDraw.ImageDraw, b: _Ball) -> None:
    """A truncated icosahedron seen face-on: a black pentagon in front, one seam from each
    of its corners to a half-hidden pentagon at the rim, hexagon edges between those."""
    black, seam = (25, 25, 25), b.px(0.04)

    def pentagon(x: float, y: float, size: float, turn: float) -> np.ndarray:
        a = turn + np.arange(5) * 2 * np.pi / 5
        return np.stack([x + size * np.cos(a), y + size * np.sin(a)], axis=1)

    corners = -np.pi / 2 + np.arange(5) * 2 * np.pi / 5
    centre = pentagon(0, 0, 0.28, corners[0])
    rim = [pentagon(0.86 * np.cos(t), 0.86 * np.sin(t), 0.28, t + np.pi) for t in corners]
    for k in range(5):
        d.line([b.pt(*centre[k]), b.pt(*rim[k][0])], fill=black, width=seam)
        near, far = rim[k], rim[(k + 1) % 5]  # join the facing corners of neighbouring rim patches
        dist = np.hypot(*(near[:, None] - far[None]).transpose(2, 0, 1))
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        d.line([b.pt(*near[i]), b.pt(*far[j])], fill=black, width=seam)
    for patch in (centre, *rim):
        d.polygon([b.pt(*p) for p in patch], fill=black)


def _tennis(d: ImageDraw.ImageDraw, b: _Ball) -> None:
    for side in (-1, 1):
        b.circle(d, side * 1.35, 0, 1.0, outline=(252, 252, 245), width=b.px(0.085))


def _baseball(d: ImageDraw.ImageDraw, b: _Ball) -> None:
    red = (205, 30, 35)
    for side in (-1, 1):
        b.circle(d, side * 1.35, 0, 1.0, outline=red, width=b.px(0.035))
        # V-shaped stitches on both sides of the seam, pointing along it
        for x, y in _seam_points(side, 0.2):
            nx, ny = x - side * 1.35, y  # unit normal of the seam circle at (x, y)
            tx, ty = -ny, nx
            for s in (-1, 1):
                start = b.pt(x + s * 0.04 * nx, y + s * 0.04 * ny)
                end = b.pt(x + s * 0.16 * nx + 0.07 * tx, y + s * 0.16 * ny + 0.07 * ty)
                d.line([start, end], fill=red, width=b.px(0.04))


def _volleyball(d: ImageDraw.ImageDraw, b: _Ball) -> None:
    """Three families of curved panels, 120 degrees apart: one blue, one yellow, one white.

    Seam k is the arc of the circle of radius R centred at C_k = R (cos t_k, sin t_k) that
    passes through the ball's centre; family k fills the part of the ball inside circle k
    and outside circle k+1 (the three parts tile the disc exactly). Two more seams parallel
    to seam k, at depths W and 2W, cut family k into three strips running from the
    neighbouring seam to the rim. Painted per canvas pixel through masks.
    """
    radius, width, half = 1.6, 0.3, 0.025  # R, W and the seams' half-width, in unit-disc coords
    x0, y0 = int(np.floor(b.cx - b.r)) - 1, int(np.floor(b.cy - b.r)) - 1
    n = int(np.ceil(2 * b.r)) + 3
    qx, qy = np.meshgrid(np.arange(x0, x0 + n) + 0.5 - b.cx, np.arange(y0, y0 + n) + 0.5 - b.cy)
    x = (qx * b.cos + qy * b.sin) / b.r  # the inverse of _Ball.pt: canvas -> unit disc
    y = (-qx * b.sin + qy * b.cos) / b.r
    t = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
    rho = np.stack([np.hypot(x - radius * np.cos(a), y - radius * np.sin(a)) for a in t])  # distance to C_k
    strips = np.array([radius - width, radius - 2 * width])[:, None, None]
    seams = np.zeros(x.shape, dtype=bool)
    for k, colour in enumerate(((25, 85, 185), (250, 205, 25), (255, 255, 255))):
        inside, outside_next = rho[k] < radius, rho[(k + 1) % 3] >= radius
        family = inside & outside_next
        d.bitmap((x0, y0), Image.fromarray(np.where(family, 255, 0).astype(np.uint8), "L"), fill=colour)
        seams |= (np.abs(rho[k] - radius) < half) & outside_next  # seam k, centre to rim
        seams |= (np.abs(rho[k] - strips).min(axis=0) < half) & inside & (rho[(k + 1) % 3] >= radius - half)
    d.bitmap((x0, y0), Image.fromarray(np.where(seams, 255, 0).astype(np.uint8), "L"), fill=(40, 50, 80))


# fill, pattern, rim colour, rim width (fraction of the diameter)
_STYLES = {
    "basketball": ((232, 112, 28), _basketball, (70, 35, 15), 0.04),
    "soccer": ((255, 255, 255), _soccer, (25, 25, 25), 0.05),
    "tennis": ((200, 228, 45), _tennis, (140, 165, 25), 0.03),
    "baseball": ((248, 242, 226), _baseball, (110, 105, 100), 0.04),
    "volleyball": ((255, 255, 255), _volleyball, (30, 60, 120), 0.035),
}
assert set(_STYLES) == set(BALLS)


def draw_ball(label: int, size: int, rng: np.random.Generator, classes: tuple[str, ...] = CLASSES,
              scale_range: tuple[float, float] = SCALE_RANGE) -> np.ndarray:
    """One (size, size, 3) uint8 image of ``classes[label]``; all randomness comes from ``rng``.

    The ball's diameter is drawn uniformly from ``scale_range`` (fractions of ``size``).
    """
    classes = check_classes(classes)
    if not isinstance(label, (int, np.integer)) or not 0 <= label < len(classes):
        raise ValueError(f"label must be in 0..{len(classes) - 1}, got {label!r}")
    return _draw(classes[label], size, rng, check_scale_range(scale_range, size))


def _draw(name: str, size: int, rng: np.random.Generator, scale_range: tuple[float, float]) -> np.ndarray:
    fill, pattern, rim, rim_width = _STYLES[name]
    diameter = rng.uniform(*scale_range) * size
    lo, hi = diameter / 2 + MARGIN, size - diameter / 2 - MARGIN
    cx, cy = rng.uniform(lo, hi, size=2)
    angle = rng.uniform(0, 2 * np.pi)

    s = SUPERSAMPLE
    canvas = size * s
    ball = _Ball(cx * s, cy * s, diameter * s / 2, angle)
    box = (ball.cx - ball.r, ball.cy - ball.r, ball.cx + ball.r, ball.cy + ball.r)

    layer = Image.new("RGB", (canvas, canvas), fill)
    pattern(ImageDraw.Draw(layer), ball)
    mask = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    image = Image.new("RGB", (canvas, canvas), _WHITE)
    image.paste(layer, mask=mask)
    ImageDraw.Draw(image).ellipse(box, outline=rim, width=ball.px(rim_width))  # drawn inside box
    # BOX with an integer factor is an exact area average: nothing bleeds past the ball
    return np.asarray(image.resize((size, size), Image.BOX), dtype=np.uint8)


# --- data sets -----------------------------------------------------------------------


def _make(n_per_class: int, size: int, seed: int, stream: int, classes: tuple[str, ...],
          scale_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    if n_per_class < 0 or size < 8:
        raise ValueError(f"need n_per_class >= 0 and size >= 8, got {n_per_class} and {size}")
    classes, scale_range = check_classes(classes), check_scale_range(scale_range, size)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), n_per_class)
    js = np.tile(np.arange(n_per_class), len(classes))
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    for i, (label, j) in enumerate(zip(labels.tolist(), js.tolist())):
        ball = BALLS.index(classes[label])  # keyed by the ball, not the label: CLASSES keeps its images
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, 0, ball, j)))
        images[i] = _draw(classes[label], size, rng, scale_range)
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, 1))).permutation(len(labels))
    return images[order], labels[order]


def make_images(n_per_class: int, size: int, seed: int, classes: tuple[str, ...] = CLASSES,
                scale_range: tuple[float, float] = SCALE_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """A balanced, shuffled set of k = len(classes) classes: images (kn, size, size, 3) uint8
    and labels (kn,) int64, label i meaning ``classes[i]``."""
    return _make(n_per_class, size, seed, _TRAIN, classes, scale_range)


def build_dataset(n_train_per_class: int, n_val_per_class: int, size: int, seed: int,
                  classes: tuple[str, ...] = CLASSES,
                  scale_range: tuple[float, float] = SCALE_RANGE) -> dict[str, np.ndarray]:
    """Training and validation sets (see :func:`make_images`); pass the same ``classes`` and
    ``scale_range`` to :func:`save_dataset`."""
    train_images, train_labels = _make(n_train_per_class, size, seed, _TRAIN, classes, scale_range)
    val_images, val_labels = _make(n_val_per_class, size, seed, _VAL, classes, scale_range)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "val_images": val_images,
        "val_labels": val_labels,
    }


def save_dataset(path: str | os.PathLike, data: dict[str, np.ndarray], *, seed: int, size: int,
                 classes: tuple[str, ...] = CLASSES, scale_range: tuple[float, float] | None = None,
                 source: str = SPORTBALLS_SOURCE) -> None:
    """Write ``data`` (the four arrays of :func:`build_dataset`) with its class names, seed and size.

    ``source`` says where the images came from: :data:`SPORTBALLS_SOURCE` (``classes`` must
    be balls; ``scale_range`` defaults to :data:`SCALE_RANGE`), or ``"folder:<path>"`` from
    :func:`gradcheck.folder.folder_source` (any two or more distinct names; no
    ``scale_range``, which only SportBalls has).
    """
    source = check_source(source)
    if source == SPORTBALLS_SOURCE:
        classes = check_classes(classes)
        extra = {"scale_range": np.array(check_scale_range(SCALE_RANGE if scale_range is None else scale_range, size))}
    else:
        if scale_range is not None:
            raise ValueError(f"scale_range is a SportBalls option; a data set from {source!r} has none")
        classes, extra = check_class_names(classes), {}
    arrays = {key: np.asarray(data[key]) for key in _ARRAY_KEYS}
    for split in ("train", "val"):
        labels = arrays[f"{split}_labels"]
        if labels.size and not 0 <= labels.min() <= labels.max() < len(classes):
            raise ValueError(f"{split} labels span {labels.min()}..{labels.max()} but there are "
                             f"{len(classes)} classes {list(classes)}")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file handle: numpy adds no ".npz"
        np.savez_compressed(f, **arrays, classes=np.array(classes), **extra,
                            seed=np.int64(seed), size=np.int64(size), source=np.array(source))


def load_dataset(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_dataset`, checking that it is whole and complete.

    ``source`` (a 0-d string array) says where the images came from; files from before it
    was stored are SportBalls. SportBalls ``classes`` may be any list of known balls; files
    from before ``scale_range`` was stored get :data:`SCALE_RANGE`, the only range there was
    then. A folder's data set may have any distinct class names and has no ``scale_range``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SportBalls data set not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}  # read everything now: surfaces CRC errors
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path} is not a readable SportBalls .npz file ({err})") from err
    missing = [k for k in (*_ARRAY_KEYS, "classes", "seed", "size") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing}; regenerate it")
    source = data.setdefault("source", np.array(SPORTBALLS_SOURCE))
    if source.ndim != 0 or source.dtype.kind != "U":
        raise ValueError(f"{path}: source must be a string, got {source.dtype} {source.shape}")
    try:
        check_source(source.item())
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    sportballs = source.item() == SPORTBALLS_SOURCE
    classes = data["classes"]
    if classes.ndim != 1 or len(classes) == 0 or classes.dtype.kind != "U":
        raise ValueError(f"{path}: classes must be a non-empty list of names, got {classes.tolist()!r}")
    unknown = [c for c in classes.tolist() if c not in BALLS] if sportballs else []
    if unknown or len(set(classes.tolist())) != len(classes):
        raise ValueError(f"{path} has classes {classes.tolist()}: "
                         + (f"unknown {unknown}; valid classes: {', '.join(BALLS)}" if unknown else "duplicates"))
    if not sportballs and "" in classes.tolist():
        raise ValueError(f"{path} has an empty class name in classes {classes.tolist()}")
    if sportballs:
        if "scale_range" not in data:
            data["scale_range"] = np.array(SCALE_RANGE)
        try:
            check_scale_range(data["scale_range"].tolist())
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    for split in ("train", "val"):
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels):
            raise ValueError(f"{path}: {split} arrays are malformed ({images.shape} {images.dtype}, {labels.shape})")
        if labels.size and (labels.dtype.kind not in "iu" or not 0 <= labels.min() <= labels.max() < len(classes)):
            raise ValueError(f"{path}: {split} labels ({labels.dtype}, {labels.min()}..{labels.max()}) "
                             f"are not all in 0..{len(classes) - 1} ({len(classes)} classes)")
    return data


def images_to_tensor(images: np.ndarray) -> "torch.Tensor":
    """uint8 NHWC -> float32 NCHW in [-1, 1], the range the DDPM and classifiers use."""
    import torch  # lazy: data generation must not need torch

    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return x.float().div(127.5).sub(1.0).contiguous()


# --- contact sheet -------------------------------------------------------------------

SHEET_LABEL_WIDTH = 90  # px reserved for the class name at the left of each row
SHEET_GAP = 4  # grey gutters keep the white-background cells apart


def sheet_zoom(size: int) -> int:
    """Nearest-neighbour upscaling factor: cells are at least 64 px on screen."""
    return max(2, -(-64 // size))


def contact_sheet(images: np.ndarray, labels: np.ndarray, path: str | os.PathLike, per_class: int = 8,
                  classes: tuple[str, ...] = CLASSES) -> None:
    """PNG grid, one row per class of ``classes`` (the data set's own list, label i =
    ``classes[i]``) with its name on the left and up to ``per_class`` examples."""
    classes = tuple(str(c) for c in classes)
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(classes):
        raise ValueError(f"labels span {labels.min()}..{labels.max()} but there are {len(classes)} classes")
    size = images.shape[1]
    cell = size * sheet_zoom(size)
    width = SHEET_LABEL_WIDTH + per_class * (cell + SHEET_GAP) + SHEET_GAP
    height = len(classes) * (cell + SHEET_GAP) + SHEET_GAP
    sheet = Image.new("RGB", (width, height), (200, 200, 200))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=14)
    except ImportError:  # Pillow built without FreeType: the small bitmap font
        font = ImageFont.load_default()
    for row, name in enumerate(classes):
        top = SHEET_GAP + row * (cell + SHEET_GAP)
        _, y0, _, y1 = draw.textbbox((0, 0), name, font=font)
        draw.text((6, top + (cell - y0 - y1) // 2), name, fill=(0, 0, 0), font=font)
        for col, i in enumerate(np.flatnonzero(labels == row)[:per_class]):
            tile = Image.fromarray(images[i]).resize((cell, cell), Image.NEAREST)
            sheet.paste(tile, (SHEET_LABEL_WIDTH + col * (cell + SHEET_GAP), top))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
