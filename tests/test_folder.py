"""A user's image folder as a data set (gradcheck.folder), the digits export (gradcheck.digits),
the data set file's ``source``, and the import-images / export-digits commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from gradcheck.cli import main
from gradcheck.data import CLASSES, SCALE_RANGE, build_dataset, load_dataset, save_dataset
from gradcheck.digits import export_digits
from gradcheck.folder import (folder_fingerprint, folder_source, read_image_folder, scan_image_folder,
                              validation_count)

# "Mango" sorts before "apple" (upper case first): the order must be ImageFolder's, not ours
NAMES = ("zebra", "apple", "Mango")
SIZES = [(20, 20), (31, 17), (12, 40), (64, 48), (9, 9), (16, 16)]  # (width, height): down and up


def _make_folder(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(123)
    for c, name in enumerate(NAMES):
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            w, h = SIZES[j % len(SIZES)]
            if (c + j) % 2:  # grayscale
                Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(root / name / f"g{j}.png")
            else:
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / f"c{j}.PNG")
        (root / name / "notes.txt").write_text("not an image: ImageFolder skips it")
    return root


@pytest.fixture
def folder(tmp_path):
    return _make_folder(tmp_path / "images")


def _pil_reference(path: Path, size: int) -> np.ndarray:
    """PIL's own conversion and resize of the file, without torchvision."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def _bytes(images: np.ndarray) -> list[bytes]:
    return sorted(im.tobytes() for im in images)


def test_classes_labels_and_pixels_match_references(folder):
    data, classes = read_image_folder(folder, 16, seed=0)
    reference = ImageFolder(folder)
    assert classes == tuple(reference.classes) == ("Mango", "apple", "zebra")
    assert data["train_images"].shape == (15, 16, 16, 3) and data["val_images"].shape == (3, 16, 16, 3)
    for split in ("train", "val"):
        assert data[f"{split}_images"].dtype == np.uint8 and data[f"{split}_labels"].dtype == np.int64
    assert np.bincount(data["train_labels"]).tolist() == [5, 5, 5]
    assert np.bincount(data["val_labels"]).tolist() == [1, 1, 1]
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() == ".png")
        expected = _bytes(np.stack([_pil_reference(p, 16) for p in files]))
        got = np.concatenate([data["train_images"][data["train_labels"] == label],
                              data["val_images"][data["val_labels"] == label]])
        assert _bytes(got) == expected  # every file once, in train or val, resized as PIL does
    grey = [im for im in data["train_images"] if (im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all()]
    assert len(grey) >= 6  # the grayscale files came out as RGB with equal channels


@pytest.mark.parametrize("fraction, n_val", [(0.1, 1), (0.25, 2), (0.5, 3), (0.99, 5)])
def test_split_sizes(folder, fraction, n_val):
    data, _ = read_image_folder(folder, 8, val_fraction=fraction, seed=3)
    assert np.bincount(data["val_labels"], minlength=3).tolist() == [n_val] * 3
    assert np.bincount(data["train_labels"], minlength=3).tolist() == [6 - n_val] * 3
    assert not set(_bytes(data["train_images"])) & set(_bytes(data["val_images"]))


def test_validation_count():
    assert [validation_count(n, 0.1) for n in (2, 5, 9, 14, 15, 100)] == [1, 1, 1, 1, 2, 10]
    assert validation_count(2, 0.9) == 1  # one is always left for training


def test_deterministic_and_seeded(folder):
    a, _ = read_image_folder(folder, 16, seed=0)
    b, _ = read_image_folder(folder, 16, seed=0)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes() and a[key].dtype == b[key].dtype
    c, _ = read_image_folder(folder, 16, seed=1)
    assert _bytes(c["val_images"]) != _bytes(a["val_images"])  # another seed holds out other images
    assert _bytes(np.concatenate([c["train_images"], c["val_images"]])) == \
        _bytes(np.concatenate([a["train_images"], a["val_images"]]))


def test_a_new_class_leaves_the_others_split_alone(folder, tmp_path):
    before, classes = read_image_folder(folder, 8, seed=0)
    (folder / "banana").mkdir()
    for j in range(4):
        Image.new("RGB", (8, 8), (j, 2 * j, 3 * j)).save(folder / "banana" / f"{j}.png")
    after, new_classes = read_image_folder(folder, 8, seed=0)
    assert new_classes == ("Mango", "apple", "banana", "zebra")
    for label, name in enumerate(classes):
        new_label = new_classes.index(name)
        assert _bytes(before["val_images"][before["val_labels"] == label]) == \
            _bytes(after["val_images"][after["val_labels"] == new_label])


def _scan(path, image_size, **kw):
    return scan_image_folder(path, **kw)


@pytest.mark.parametrize("read_image_folder", [read_image_folder, _scan], ids=["read", "scan"])
def test_errors_name_the_folder_file_or_class(folder, tmp_path, read_image_folder):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="not found.*nowhere"):
        read_image_folder(missing, 16)
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(one / "only" / "a.png")
    with pytest.raises(ValueError, match=r"one has 1 class sub-folder \['only'\]; need at least 2"):
        read_image_folder(one, 16)
    with pytest.raises(ValueError, match="flat has 0 class sub-folders"):
        (tmp_path / "flat").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
        read_image_folder(tmp_path / "flat", 16)

    few = tmp_path / "few"
    for name, n in (("apple", 4), ("zebra", 1)):
        (few / name).mkdir(parents=True)
        for j in range(n):
            Image.new("RGB", (8, 8), (j, j, j)).save(few / name / f"{j}.png")
    with pytest.raises(ValueError, match="few: every class needs at least 2 images.*'zebra' has 1") as err:
        read_image_folder(few, 16)
    assert "apple" not in str(err.value)
    (few / "zebra" / "0.png").unlink()
    (few / "zebra" / "notes.txt").write_text("no image")
    with pytest.raises(ValueError, match="'zebra' has 0"):
        read_image_folder(few, 16)

    bad = _make_folder(tmp_path / "bad")
    (bad / "apple" / "broken.png").write_bytes(b"this is not a PNG file")
    with pytest.raises(ValueError, match=r"cannot read image .*bad/apple/broken\.png"):
        read_image_folder(bad, 16)
    with pytest.raises(ValueError, match="val_fraction"):
        read_image_folder(folder, 16, val_fraction=1.0)
    (bad / "apple" / "broken.png").write_bytes((bad / "apple" / "c1.PNG").read_bytes()[:60])  # truncated
    with pytest.raises(ValueError, match=r"cannot read image .*bad/apple/broken\.png"):
        read_image_folder(bad, 16)
    if read_image_folder is _scan:
        return  # the scan decodes no image: the size is checked when reading
    with pytest.raises(ValueError, match="image_size"):
        read_image_folder(folder, 4)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_scan_counts_what_reading_gives(folder, fraction):
    data, classes = read_image_folder(folder, 8, val_fraction=fraction)
    counts = scan_image_folder(folder, fraction)
    assert list(counts) == list(classes)
    for label, name in enumerate(classes):
        assert counts[name] == ((data["train_labels"] == label).sum(), (data["val_labels"] == label).sum())


def test_fingerprint_changes_with_the_files_only(folder):
    before = folder_fingerprint(folder)
    assert folder_fingerprint(folder) == before
    (folder / "notes.txt").write_text("not an image")  # ImageFolder skips it, so does the fingerprint
    assert folder_fingerprint(folder) == before
    first = sorted((folder / "apple").iterdir())[0]
    first.write_bytes(first.read_bytes() + b"\0")
    assert folder_fingerprint(folder) != before


# --- the data set file ---------------------------------------------------------------


def test_round_trip_through_the_data_set_file(folder, tmp_path):
    data, classes = read_image_folder(folder, 16, seed=2)
    path = tmp_path / "mine.npz"
    save_dataset(path, data, seed=2, size=16, classes=classes, source=folder_source(folder))
    loaded = load_dataset(path)
    for key, value in data.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype
    assert tuple(loaded["classes"].tolist()) == classes
    assert str(loaded["source"]) == f"folder:{folder.resolve()}"
    assert "scale_range" not in loaded and int(loaded["seed"]) == 2 and int(loaded["size"]) == 16
    with pytest.raises(ValueError, match="scale_range is a SportBalls option"):
        save_dataset(path, data, seed=2, size=16, classes=classes, source=folder_source(folder),
                     scale_range=SCALE_RANGE)
    with pytest.raises(ValueError, match="unknown class 'Mango'"):  # ball names only for SportBalls
        save_dataset(path, data, seed=2, size=16, classes=classes)
    with pytest.raises(ValueError, match="duplicate class 'apple'"):
        save_dataset(path, data, seed=2, size=16, classes=("apple", "apple", "x"), source=folder_source(folder))
    with pytest.raises(ValueError, match="source must be"):
        save_dataset(path, data, seed=2, size=16, classes=classes, source="somewhere")


def test_sportballs_files_say_so_and_old_files_still_load(tmp_path):
    d = build_dataset(2, 1, 16, seed=0)
    path = tmp_path / "sb.npz"
    save_dataset(path, d, seed=0, size=16)
    loaded = load_dataset(path)
    assert str(loaded["source"]) == "sportballs" and loaded["scale_range"].tolist() == list(SCALE_RANGE)
    old = tmp_path / "old.npz"  # as written before source was stored
    np.savez_compressed(old, **d, classes=np.array(CLASSES), scale_range=np.array(SCALE_RANGE),
                        seed=np.int64(0), size=np.int64(16))
    assert str(load_dataset(old)["source"]) == "sportballs"
    strange = tmp_path / "strange.npz"
    np.savez_compressed(strange, **d, classes=np.array(CLASSES), seed=np.int64(0), size=np.int64(16),
                        source=np.array("ftp://elsewhere"))
    with pytest.raises(ValueError, match="strange.npz.*source must be"):
        load_dataset(strange)
    foreign = tmp_path / "foreign.npz"  # class names that are no balls need a folder source
    np.savez_compressed(foreign, **d, classes=np.array(["a", "b", "c", "d"]), seed=np.int64(0), size=np.int64(16))
    with pytest.raises(ValueError, match="foreign.npz.*unknown"):
        load_dataset(foreign)


# --- scikit-learn's digits -------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits") / "digits"
    assert export_digits(root) == 1797
    return root


def test_export_digits_matches_load_digits(digits_folder):
    from sklearn.datasets import load_digits

    reference = load_digits()
    files = sorted(digits_folder.glob("*/*.png"))
    assert len(files) == 1797
    assert sorted(p.name for p in digits_folder.iterdir()) == [str(d) for d in range(10)]
    for path in files:
        index = int(path.stem)
        assert int(path.parent.name) == reference.target[index]
        with Image.open(path) as im:
            assert im.mode == "L" and im.size == (8, 8)
            pixels = np.asarray(im).astype(float)
        np.testing.assert_allclose(pixels, reference.images[index] * 255 / 16, atol=0.5)
    assert sorted({int(p.stem) for p in files}) == list(range(1797))


def test_import_the_digits(digits_folder):
    from sklearn.datasets import load_digits

    data, classes = read_image_folder(digits_folder, 8, seed=0)
    assert classes == tuple(str(d) for d in range(10))
    assert len(data["train_labels"]) + len(data["val_labels"]) == 1797
    assert np.bincount(data["val_labels"]).min() >= 17  # about 10% of each ~180
    # at 8 px nothing is resized: each image is a digit, grey over three channels, with its label
    reference = load_digits()
    scaled = {np.rint(im * 255 / 16).astype(np.uint8).tobytes(): t for im, t in zip(reference.images, reference.target)}
    for image, label in zip(data["val_images"], data["val_labels"]):
        assert (image == image[..., :1]).all()
        assert scaled[image[..., 0].tobytes()] == label


def test_export_digits_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(ValueError, match=r"mine already holds \['thesis.tex'\]"):
        export_digits(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


# --- the commands ----------------------------------------------------------------------


def test_cli_export_then_import(digits_folder, tmp_path):
    out, sheet = tmp_path / "digits.npz", tmp_path / "sheet.png"
    assert main(["import-images", "--folder", str(digits_folder), "--out", str(out), "--size", "16",
                 "--val-fraction", "0.2", "--seed", "5", "--sheet", str(sheet)]) == 0
    loaded = load_dataset(out)
    assert loaded["classes"].tolist() == [str(d) for d in range(10)] and int(loaded["size"]) == 16
    assert loaded["train_images"].shape[1:] == (16, 16, 3) and 350 <= len(loaded["val_labels"]) <= 370
    with Image.open(sheet) as im:
        assert im.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.npz", "sheet.png"]  # no temp files

    again = tmp_path / "again"
    assert main(["export-digits", "--out", str(again)]) == 0
    assert len(list(again.glob("*/*.png"))) == 1797
    assert main(["export-digits", "--out", str(again)]) == 0  # an earlier export is replaced
    assert main(["import-images", "--folder", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert main(["import-images", "--folder", str(digits_folder), "--out", str(out), "--val-fraction", "1.5"]) == 2


def test_the_scan_names_every_unreadable_file_at_once(tmp_path):
    bad = _make_folder(tmp_path / "bad")
    png = next((bad / "apple").glob("*.PNG")).read_bytes()
    (bad / "apple" / "cut.png").write_bytes(png[:-12])  # truncated: its last chunk's checksum is gone
    (bad / "zebra" / "text.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="2 unreadable image files") as err:
        scan_image_folder(bad)
    assert "apple/cut.png" in str(err.value) and "zebra/text.png" in str(err.value)
