"""Stage 1, the data set: draw SportBalls, or read an image folder (the digits, your own)."""

from __future__ import annotations

import logging

from ..settings import BALLS, CLASSES, SCALE_RANGE, DataSettings
from . import command, option, positive

log = logging.getLogger("gradcheck")


@command("make-data", help="draw the SportBalls data set")
@option("--out", required=True, help="output .npz (images uint8 + labels, train and validation)")
@option("--sheet", help="optional contact-sheet PNG of training examples")
@option("--size", type=positive, setting=(DataSettings, "size"), help="image side in pixels (paper: 64)")
@option("--train-per-class", type=positive, setting=(DataSettings, "train_per_class"), help="training images per class")
@option("--val-per-class", type=positive, setting=(DataSettings, "val_per_class"), help="validation images per class")
@option("--seed", type=int, setting=(DataSettings, "seed"), help="data set seed")
@option("--classes", nargs="+", choices=BALLS, setting=(DataSettings, "classes"), metavar="NAME",
        help=f"ball classes in label order, two or more of {', '.join(BALLS)} "
        f"(default: {' '.join(CLASSES)}; authors: baseball basketball volleyball soccer)")
@option("--scale-range", nargs=2, type=float, setting=(DataSettings, "scale_range"), metavar=("LOW", "HIGH"),
        help=f"ball diameter range as fractions of the image side (default: {SCALE_RANGE[0]:g} "
        f"{SCALE_RANGE[1]:g}; authors: about 0.15 0.40)")
def make_data(a):
    from ..data import build_dataset, contact_sheet, save_dataset

    classes, scale_range = tuple(a.classes), tuple(a.scale_range)
    data = build_dataset(a.train_per_class, a.val_per_class, a.size, a.seed, classes=classes, scale_range=scale_range)
    save_dataset(a.out, data, seed=a.seed, size=a.size, classes=classes, scale_range=scale_range)
    if a.sheet:
        contact_sheet(data["train_images"], data["train_labels"], a.sheet, classes=classes)
    log.info("wrote %d training and %d validation images of %d px to %s",
             len(data["train_labels"]), len(data["val_labels"]), a.size, a.out)


@command("import-images", help="read your own image folder into a data set .npz, as make-data writes")
@option("--folder", required=True,
        help="image folder in torchvision's ImageFolder layout: FOLDER/<class>/<image>, two or more "
        "classes; class names are the sub-folder names, labels in their sorted order")
@option("--out", required=True, help="output .npz (images uint8 + labels, train and validation)")
@option("--sheet", help="optional contact-sheet PNG of training examples")
@option("--size", type=positive, setting=(DataSettings, "size"),
        help="image side in pixels: every image is converted to RGB and resized to SIZE x SIZE "
        "(bilinear, aspect ratio not kept)")
@option("--val-fraction", type=float, setting=(DataSettings, "val_fraction"),
        help="share of each class held out for validation, rounded, at least one image "
        "(and at least one left for training)")
@option("--seed", type=int, setting=(DataSettings, "seed"), help="seed of the validation split and the shuffle")
def import_images(a):
    from ..data import contact_sheet, save_dataset
    from ..folder import folder_source, read_image_folder

    data, classes = read_image_folder(a.folder, a.size, a.val_fraction, a.seed)
    save_dataset(a.out, data, seed=a.seed, size=a.size, classes=classes, source=folder_source(a.folder))
    if a.sheet:
        contact_sheet(data["train_images"], data["train_labels"], a.sheet, classes=classes)
    log.info("wrote %d training and %d validation images of %d px in %d classes (%s) from %s to %s",
             len(data["train_labels"]), len(data["val_labels"]), a.size, len(classes), ", ".join(classes),
             a.folder, a.out)


@command("export-digits", help="write scikit-learn's 8 px handwritten digits as an image folder (for import-images)")
@option("--out", required=True,
        help="output folder: OUT/<digit>/<index>.png, 1797 grayscale PNGs; must be new, empty or an earlier export")
def export_digits(a):
    from ..digits import export_digits as export

    n = export(a.out)
    log.info("wrote %d digit images (scikit-learn's load_digits, 8 px) in 10 class folders to %s", n, a.out)
