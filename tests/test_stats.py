"""gradcheck.stats against references it does not share code with: normal theory, SciPy, torchmetrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gradcheck.stats import (Interval, frechet_distance_features, hierarchical_bootstrap,
                             kernel_inception_distance_features, mean_statistic)


class FeatureIdentity(torch.nn.Module):
    """Passes features through, so torchmetrics' FID/KID run on our vectors.

    ``num_features`` must be set: without it torchmetrics infers the size by feeding a
    (1, 3, 299, 299) dummy image, which an identity would answer with 299.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def unbatched(statistic):
    """The same statistic without its ``.batched`` attribute: forces the loop path."""
    return lambda *arrays: statistic(*arrays)


def feature_sets(m: int, n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(m, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)  # correlated features
    fake = 0.3 + 1.2 * rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    return real, fake


# --- Interval -------------------------------------------------------------------------------

def test_interval_format_and_dict():
    iv = Interval(0.123, 0.1, 0.15)
    assert iv.format() == "0.123 [0.100, 0.150]"
    assert iv.format("{:.1f}") == "0.1 [0.1, 0.1]"
    assert iv.to_dict("acc") == {"acc": 0.123, "acc_low": 0.1, "acc_high": 0.15}


# --- bootstrap ------------------------------------------------------------------------------

def test_one_group_interval_matches_normal_theory():
    x = np.random.default_rng(1).normal(2.0, 1.0, 400)
    iv = hierarchical_bootstrap([(x,)], mean_statistic, n_boot=4000)
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert iv.estimate == pytest.approx(x.mean(), abs=1e-12)
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * se, rel=0.10)
    assert (iv.low + iv.high) / 2 == pytest.approx(x.mean(), abs=0.15 * se)


def test_one_group_coverage():
    rng = np.random.default_rng(2)
    covered = [iv.low <= 5.0 <= iv.high
               for iv in (hierarchical_bootstrap([(rng.normal(5.0, 2.0, 50),)], mean_statistic, n_boot=300, seed=i)
                          for i in range(200))]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_seed_level_variance_widens_the_interval():
    rng = np.random.default_rng(3)
    groups = [(rng.normal(offset, 1.0, 100),) for offset in rng.normal(0.0, 1.0, 5)]
    iv = hierarchical_bootstrap(groups, mean_statistic)
    pooled = hierarchical_bootstrap([(np.concatenate([g[0] for g in groups]),)], mean_statistic)
    within_se = np.sqrt(sum(g[0].var(ddof=1) / len(g[0]) for g in groups)) / len(groups)
    assert iv.high - iv.low > 3 * (pooled.high - pooled.low)
    assert iv.high - iv.low > 3 * 2 * 1.96 * within_se
    assert iv.estimate == pytest.approx(np.mean([g[0].mean() for g in groups]))


def test_hierarchical_coverage_of_the_grand_mean():
    # 10 seeds whose true means scatter (sd 1) around 0. The percentile bootstrap over few
    # seeds under-covers (its spread is sqrt((S-1)/S) of the true one, and z not t): ~0.90.
    rng = np.random.default_rng(4)
    covered = []
    for i in range(200):
        groups = [(rng.normal(offset, 1.0, 20),) for offset in rng.normal(0.0, 1.0, 10)]
        iv = hierarchical_bootstrap(groups, mean_statistic, n_boot=300, seed=i)
        covered.append(iv.low <= 0.0 <= iv.high)
    assert 0.80 <= np.mean(covered) <= 0.98


def test_loop_and_batched_paths_agree():
    rng = np.random.default_rng(5)
    groups = [(rng.random(n) < 0.7,) for n in (30, 45, 60)]  # unequal sizes
    batched = hierarchical_bootstrap(groups, mean_statistic, n_boot=500, seed=7)
    looped = hierarchical_bootstrap(groups, unbatched(mean_statistic), n_boot=500, seed=7)
    assert batched == looped  # exact: sums of 0/1 are exact in float64
    assert hierarchical_bootstrap(groups, mean_statistic, n_boot=500, seed=8) != batched

    feats = [feature_sets(8, 10, 5, seed=s) for s in range(2)]
    for stat in (frechet_distance_features, kernel_inception_distance_features):
        b = hierarchical_bootstrap(feats, stat, n_boot=60, seed=1)
        lo = hierarchical_bootstrap(feats, unbatched(stat), n_boot=60, seed=1)
        np.testing.assert_allclose([b.estimate, b.low, b.high], [lo.estimate, lo.low, lo.high], rtol=1e-10)


def test_estimate_is_the_statistic_on_the_original_data():
    feats = [feature_sets(12, 9, 6, seed=s) for s in range(3)]
    iv = hierarchical_bootstrap(feats, frechet_distance_features, n_boot=20)
    assert iv.estimate == pytest.approx(np.mean([frechet_distance_features(r, f) for r, f in feats]), rel=1e-12)
    assert iv.low <= iv.high


def test_bad_inputs_are_named():
    x = np.ones(5)
    with pytest.raises(ValueError, match="confidence"):
        hierarchical_bootstrap([(x,)], mean_statistic, confidence=1.0)
    with pytest.raises(ValueError, match="confidence"):
        hierarchical_bootstrap([(x,)], mean_statistic, confidence=0.0)
    with pytest.raises(ValueError, match="n_boot"):
        hierarchical_bootstrap([(x,)], mean_statistic, n_boot=0)
    with pytest.raises(ValueError, match="at least one group"):
        hierarchical_bootstrap([], mean_statistic)
    with pytest.raises(ValueError, match="group 1 is empty"):
        hierarchical_bootstrap([(x,), ()], mean_statistic)
    with pytest.raises(ValueError, match="array 1 of group 0 is empty"):
        hierarchical_bootstrap([(np.ones((4, 2)), np.ones((0, 2)))], frechet_distance_features)
    with pytest.raises(ValueError, match="n >= 2"):
        frechet_distance_features(np.ones((1, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match="do not match"):
        kernel_inception_distance_features(np.ones((4, 3)), np.ones((4, 2)))


# --- FID ------------------------------------------------------------------------------------

def scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    s_r, s_f = np.cov(real, rowvar=False, ddof=1), np.cov(fake, rowvar=False, ddof=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular product when n < d
        covmean = scipy.linalg.sqrtm(s_r @ s_f).real
    return float(((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(s_r + s_f - 2 * covmean))


@pytest.mark.parametrize("m,n,d", [(24, 30, 60), (150, 120, 12)], ids=["n<d", "n>d"])
def test_fid_matches_scipy(m, n, d):
    real, fake = feature_sets(m, n, d)
    assert frechet_distance_features(real, fake) == pytest.approx(scipy_fid(real, fake), rel=1e-6)
    assert frechet_distance_features(torch.tensor(real), torch.tensor(fake)) == pytest.approx(
        frechet_distance_features(real, fake), rel=1e-12)


@pytest.mark.parametrize("m,n,d", [(40, 40, 96), (64, 50, 16)])
def test_fid_matches_torchmetrics(m, n, d):
    real, fake = feature_sets(m, n, d, seed=1)
    metric = FrechetInceptionDistance(feature=FeatureIdentity(d))
    metric.update(torch.tensor(real), real=True)
    metric.update(torch.tensor(fake), real=False)
    assert frechet_distance_features(real, fake) == pytest.approx(float(metric.compute()), rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    real, _ = feature_sets(20, 20, 50)
    assert frechet_distance_features(real, real) == pytest.approx(0.0, abs=1e-9)


def test_fid_batched_equals_unbatched():
    sets = [feature_sets(16, 20, 40, seed=s) for s in range(4)]
    got = frechet_distance_features.batched(np.stack([r for r, _ in sets]), np.stack([f for _, f in sets]))
    np.testing.assert_allclose(got, [frechet_distance_features(r, f) for r, f in sets], rtol=1e-12)


# --- KID ------------------------------------------------------------------------------------

def hand_kid(real: np.ndarray, fake: np.ndarray, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD² by explicit sums over pairs."""
    gamma = 1.0 / real.shape[1]

    def k(a, b):
        return (gamma * float(a @ b) + coef) ** degree

    m, n = len(real), len(fake)
    xx = sum(k(real[i], real[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(fake[i], fake[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(real[i], fake[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("m,n", [(15, 15), (12, 20)])
def test_kid_matches_hand_computation(m, n):
    real, fake = feature_sets(m, n, 8, seed=2)
    assert kernel_inception_distance_features(real, fake) == pytest.approx(hand_kid(real, fake), rel=1e-9)
    assert kernel_inception_distance_features(real, fake, degree=2, coef=0.5) == pytest.approx(
        hand_kid(real, fake, degree=2, coef=0.5), rel=1e-9)


def test_kid_matches_torchmetrics():
    real, fake = feature_sets(50, 50, 96, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        metric = KernelInceptionDistance(feature=FeatureIdentity(96), subsets=1, subset_size=50)
    metric.update(torch.tensor(real), real=True)
    metric.update(torch.tensor(fake), real=False)
    mean, _ = metric.compute()
    assert kernel_inception_distance_features(real, fake) == pytest.approx(float(mean), rel=1e-6)


def test_kid_batched_equals_unbatched():
    sets = [feature_sets(16, 20, 40, seed=s) for s in range(4)]
    got = kernel_inception_distance_features.batched(np.stack([r for r, _ in sets]), np.stack([f for _, f in sets]))
    np.testing.assert_allclose(got, [kernel_inception_distance_features(r, f) for r, f in sets], rtol=1e-12)


# --- bias correction for FID and KID --------------------------------------------------------

@pytest.mark.parametrize("statistic", [frechet_distance_features, kernel_inception_distance_features])
def test_bias_corrected_interval_brackets_the_estimate_for_equal_distributions(statistic):
    """Resampling with replacement inflates FID and KID: the plain percentile interval of two
    samples of one distribution lies above the estimate; the bias-corrected one contains it
    and, across independent data sets, contains the true value (0) at a sensible rate."""
    covered = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        groups = [(rng.normal(size=(40, 60)), rng.normal(size=(40, 60))) for _ in range(3)]
        plain = hierarchical_bootstrap(groups, statistic, n_boot=200, seed=seed)
        fixed = hierarchical_bootstrap(groups, statistic, n_boot=200, seed=seed, correct_bias=True)
        assert plain.low > plain.estimate  # the defect being corrected
        assert fixed.low <= fixed.estimate <= fixed.high
        assert fixed.high - fixed.low == pytest.approx(plain.high - plain.low)
        covered += fixed.low <= 0.0 <= fixed.high if statistic is kernel_inception_distance_features else 0
    if statistic is kernel_inception_distance_features:  # KID is unbiased: 0 is its true value
        assert covered >= 9
