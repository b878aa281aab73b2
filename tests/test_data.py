"""Tests for the SportBalls generator (gradcheck.data)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gradcheck import data
from gradcheck.data import (
    CLASSES,
    build_dataset,
    class_index,
    contact_sheet,
    draw_ball,
    load_dataset,
    make_images,
    save_dataset,
)


@pytest.fixture(scope="module")
def small():
    return make_images(5, 32, seed=0)


def _digests(images: np.ndarray) -> set[bytes]:
    return {im.tobytes() for im in images}


def test_classes_and_class_index():
    assert CLASSES == ("basketball", "soccer", "tennis", "baseball")
    assert [class_index(c) for c in CLASSES] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="volleyball") as err:
        class_index("volleyball")
    assert "baseball" in str(err.value)  # lists the valid ones


def test_shapes_dtypes_balance(small):
    images, labels = small
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (20,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=4).tolist() == [5, 5, 5, 5]
    assert labels.min() >= 0 and labels.max() < len(CLASSES)
    assert len(set(labels[:8].tolist())) > 1  # shuffled, not in class blocks


def test_deterministic(small):
    images, labels = small
    again_images, again_labels = make_images(5, 32, seed=0)
    np.testing.assert_array_equal(images, again_images)
    np.testing.assert_array_equal(labels, again_labels)
    other_images, _ = make_images(5, 32, seed=1)
    assert not np.array_equal(images, other_images)


def test_draw_ball_depends_only_on_its_rng():
    a = draw_ball(2, 32, np.random.default_rng(7))
    b = draw_ball(2, 32, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    with pytest.raises(ValueError):
        draw_ball(4, 32, np.random.default_rng(0))


def test_image_does_not_depend_on_n():
    # the j-th ball of each class is the same whatever n: the bigger set contains the smaller
    images4, labels4 = make_images(4, 32, seed=3)
    images8, labels8 = make_images(8, 32, seed=3)
    for c in range(len(CLASSES)):
        assert _digests(images4[labels4 == c]) <= _digests(images8[labels8 == c])


def test_train_and_val_are_disjoint():
    d = build_dataset(6, 3, 32, seed=0)
    assert set(d) == {"train_images", "train_labels", "val_images", "val_labels"}
    assert d["train_images"].shape == (24, 32, 32, 3) and d["val_images"].shape == (12, 32, 32, 3)
    assert np.bincount(d["val_labels"], minlength=4).tolist() == [3, 3, 3, 3]
    assert not _digests(d["train_images"]) & _digests(d["val_images"])
    np.testing.assert_array_equal(d["train_images"], make_images(6, 32, seed=0)[0])


@pytest.mark.parametrize("size", [32, 64])
def test_ball_fully_inside(size):
    images, _ = make_images(40, size, seed=5)
    frame = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert frame.min() >= 250
    assert (images < 250).any(axis=(1, 2, 3)).all()  # and every image does contain a ball


def test_sizes_vary():
    images, _ = make_images(25, 32, seed=2)
    area = (images < 250).any(axis=3).sum(axis=(1, 2))
    assert area.max() > 2 * area.min()  # diameter spans 40%-75% of the side


def _mean_colour(images: np.ndarray) -> np.ndarray:
    ball = (images < 250).any(axis=3)
    return np.stack([im[m].mean(axis=0) for im, m in zip(images.astype(float), ball)])


def test_colour_alone_separates_classes():
    # nearest class-mean colour of the non-white pixels: an independent check of the classes
    ref_images, ref_labels = make_images(25, 32, seed=10)
    ref = _mean_colour(ref_images)
    means = np.stack([ref[ref_labels == c].mean(axis=0) for c in range(len(CLASSES))])
    images, labels = make_images(50, 32, seed=11)  # 200 images
    pred = np.argmin(np.linalg.norm(_mean_colour(images)[:, None] - means[None], axis=2), axis=1)
    assert (pred == labels).mean() > 0.95


def test_save_load_round_trip(tmp_path):
    d = build_dataset(2, 1, 32, seed=4)
    path = tmp_path / "sportballs.npz"
    save_dataset(path, d, seed=4, size=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sportballs.npz"]  # no temp file left
    loaded = load_dataset(path)
    for key, value in d.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype
    assert tuple(loaded["classes"].tolist()) == CLASSES
    assert int(loaded["seed"]) == 4 and int(loaded["size"]) == 32


def test_load_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_dataset(missing)

    path = tmp_path / "sportballs.npz"
    save_dataset(path, build_dataset(2, 1, 32, seed=4), seed=4, size=32)
    raw = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        load_dataset(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="garbage.npz"):
        load_dataset(garbage)

    incomplete = tmp_path / "incomplete.npz"
    np.savez_compressed(incomplete, train_images=np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="incomplete.npz.*val_images"):
        load_dataset(incomplete)


def test_images_to_tensor(small):
    torch = pytest.importorskip("torch")
    images, _ = small
    x = data.images_to_tensor(images)
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.max() == 1  # white background -> 1
    assert torch.allclose(x[3, :, 5, 7], torch.tensor(images[3, 5, 7] / 127.5 - 1, dtype=torch.float32))


def test_contact_sheet(tmp_path, small):
    images, labels = small
    path = tmp_path / "sheet.png"
    contact_sheet(images, labels, path, per_class=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]
    cell = 32 * data.sheet_zoom(32)
    assert cell >= 64
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (
            data.SHEET_LABEL_WIDTH + 4 * (cell + data.SHEET_GAP) + data.SHEET_GAP,
            len(CLASSES) * (cell + data.SHEET_GAP) + data.SHEET_GAP,
        )
