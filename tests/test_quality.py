import numpy as np
import pytest
import torch

from conftest import ColourClassifier, tiny_unet
from gradcheck.ddpm import build_scheduler
from gradcheck.guidance import GuidanceSettings, guided_sample, initial_noise, per_sample_seeds, sample_generators
from gradcheck.quality import (RealReference, class_counts, real_reference_sets, share_interval,
                               unconditional_quality, unguided_samples)

SHAPE = (3, 8, 8)  # tiny_unet()'s images


class ColourJudge(ColourClassifier):
    """ColourClassifier (class 0 where red > green, class 1 otherwise) with a parameter, as a real judge has."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))


def test_class_counts_count_the_judges_labels():
    images = torch.zeros(5, 3, 4, 4)
    images[:3, 0] = 1.0
    images[3:, 1] = 1.0
    np.testing.assert_array_equal(class_counts(ColourJudge(), images, 3), [3, 2, 0])


def test_share_interval_is_the_wilson_score_interval():
    # by hand: centre (p + z^2 / 2n) / (1 + z^2 / n), half-width z sqrt(p(1-p)/n + z^2 / 4n^2) / (1 + z^2 / n)
    z, n = 1.959963984540054, 96
    for count in (0, 8, 44, 96):
        p = count / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        np.testing.assert_allclose(share_interval(count, n), (centre - half, centre + half), atol=1e-12)
    low, high = share_interval(8, 96, confidence=0.5)
    assert share_interval(8, 96)[0] < low < 8 / 96 < high < share_interval(8, 96)[1]


def test_real_reference_sets_are_disjoint_seeded_draws():
    pairs = real_reference_sets(np.zeros((50, 2)), 10, draws=3, seed=1)
    assert len(pairs) == 3
    for a, b in pairs:
        assert len(a) == len(b) == 10 and not set(a) & set(b)
    again = real_reference_sets(np.zeros((50, 2)), 10, draws=3, seed=1)
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(pairs, again))
    with pytest.raises(ValueError, match="need 40 images; the data set has 30"):
        real_reference_sets(np.zeros((30, 2)), 20, draws=1)


def test_fid_ratio_is_near_one_for_real_like_samples_and_large_for_shifted_ones():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(600, 4))
    reference = RealReference.draw(real, 100, draws=5)
    alike = unconditional_quality(rng.normal(size=(100, 4)), reference)
    assert 0.3 < alike["fid_ratio"] < 3
    shifted = unconditional_quality(rng.normal(size=(100, 4)) + 2.0, RealReference.draw(real, 100, draws=5))
    assert shifted["fid_ratio"] > 10
    assert shifted["fid_real_vs_real"] == pytest.approx(alike["fid_real_vs_real"])  # same seeded real draws


def test_unguided_samples_are_the_unguided_cells_samples():
    unet, scheduler = tiny_unet(), build_scheduler(50)
    images = unguided_samples(unet, scheduler, seeds=[0, 2], num_samples=2, batch_size=3, steps=4, device="cpu")
    gens = sample_generators(per_sample_seeds([0, 2], 2))
    cell, _ = guided_sample(unet, scheduler, None, initial_noise(gens, SHAPE, "cpu"), GuidanceSettings(), gens, 4,
                            progress=False)
    torch.testing.assert_close(images, cell)
