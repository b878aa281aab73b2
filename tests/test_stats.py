"""gradcheck.stats against references it does not share code with: normal theory, SciPy, torchmetrics,
exact enumeration, and a copy of the two-level bootstrap as it was before the replicate level."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gradcheck.stats import (_CHUNK, Interval, _check_groups, frechet_distance_features, hierarchical_bootstrap,
                             kernel_inception_distance_features, mean_statistic, nanmean_statistic,
                             paired_difference)


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


def test_nanmean_skips_unmeasured_samples_in_both_paths():
    """Informativeness is NaN for a sample whose gradient was zero at every watched step."""
    rng = np.random.default_rng(3)
    values = [rng.normal(size=n) for n in (20, 25)]
    values[0][[2, 7]] = np.nan
    groups = [(v,) for v in values]
    batched = hierarchical_bootstrap(groups, nanmean_statistic, n_boot=300, seed=4)
    looped = hierarchical_bootstrap(groups, unbatched(nanmean_statistic), n_boot=300, seed=4)
    np.testing.assert_allclose([batched.estimate, batched.low, batched.high], [looped.estimate, looped.low, looped.high],
                               rtol=1e-12)
    by_hand = np.mean([v[~np.isnan(v)].mean() for v in values])  # the mean of the groups' measured means
    assert batched.estimate == pytest.approx(by_hand, rel=1e-12)
    assert np.isfinite([batched.low, batched.high]).all() and batched.low < by_hand < batched.high


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


# --- training-replicate level and pairing ----------------------------------------------------

def _reference_two_level(groups, statistic, n_boot=1000, confidence=0.95, seed=0, correct_bias=False):
    """hierarchical_bootstrap's body verbatim from before replicate_of and paired existed."""
    groups = _check_groups(groups)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    batched = getattr(statistic, "batched", None)
    estimate = float(np.mean([statistic(*group) for group in groups]))

    rng = np.random.default_rng(seed)
    n_groups = len(groups)
    drawn = rng.integers(0, n_groups, size=(n_boot, n_groups))  # seed level
    values = np.empty((n_boot, n_groups))
    for pos in range(n_groups):
        for g, arrays in enumerate(groups):
            reps = np.flatnonzero(drawn[:, pos] == g)
            if len(reps) == 0:
                continue
            rows = [rng.integers(0, len(a), size=(len(reps), len(a))) for a in arrays]  # sample level
            if batched is not None:
                for s in range(0, len(reps), _CHUNK):
                    chunk = slice(s, s + _CHUNK)
                    values[reps[chunk], pos] = batched(*(a[r[chunk]] for a, r in zip(arrays, rows)))
            else:
                for k, rep in enumerate(reps):
                    values[rep, pos] = statistic(*(a[r[k]] for a, r in zip(arrays, rows)))
    alpha = (1 - confidence) / 2
    replicates = values.mean(axis=1)
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    shift = replicates.mean() - estimate if correct_bias else 0.0
    return Interval(estimate, float(low - shift), float(high - shift))


@pytest.mark.parametrize("correct_bias", [False, True])
@pytest.mark.parametrize("kind", ["mean", "mean-loop", "fid", "fid-loop"])
def test_one_replicate_is_bit_identical_to_the_two_level_bootstrap(kind, correct_bias):
    rng = np.random.default_rng(11)
    if kind.startswith("mean"):
        groups, statistic, n_boot = [(rng.normal(size=n),) for n in (17, 25, 31)], mean_statistic, 700
    else:
        groups, statistic, n_boot = [feature_sets(9, 11, 5, seed=s) for s in range(3)], frechet_distance_features, 60
    if kind.endswith("loop"):
        statistic = unbatched(statistic)
    want = _reference_two_level(groups, statistic, n_boot=n_boot, seed=3, correct_bias=correct_bias)
    for replicate_of in (None, [4, 4, 4]):
        got = hierarchical_bootstrap(groups, statistic, n_boot=n_boot, seed=3, correct_bias=correct_bias,
                                     replicate_of=replicate_of)
        assert got == want  # exact, floats included


def exact_bootstrap(data, replicate_level=True):
    """Every outcome of the three-level bootstrap of the mean, with its probability.

    ``data[r][s]`` is the sample vector of seed s of replicate r. Enumerates the replicate
    draws (or keeps each replicate once if ``replicate_level`` is False), the seed draws
    within each drawn replicate and the row draws of each drawn seed; the value is the mean
    over drawn replicates of the mean over their drawn seeds of the resampled mean.
    """
    def resample_means(x):
        return np.array([np.mean(x[list(rows)]) for rows in itertools.product(range(len(x)), repeat=len(x))])

    n_reps = len(data)
    rep_draws = list(itertools.product(range(n_reps), repeat=n_reps)) if replicate_level else [tuple(range(n_reps))]
    values, weights = [], []
    for reps in rep_draws:
        seed_draws = list(itertools.product(*(itertools.product(range(len(data[r])), repeat=len(data[r]))
                                              for r in reps)))
        for seeds in seed_draws:
            # The value is linear in the drawn seeds' resampled means: one axis per drawn seed,
            # so each cell of the grid is one row-level outcome.
            total = np.zeros(())
            for r, drawn in zip(reps, seeds):
                for s in drawn:
                    total = np.add.outer(total, resample_means(data[r][s]) / (n_reps * len(drawn)))
            values.append(total.ravel())
            weights.append(np.full(total.size, 1.0 / (len(rep_draws) * len(seed_draws) * total.size)))
    return np.concatenate(values), np.concatenate(weights)


def exact_quantile(values, weights, p):
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(weights[order])
    return values[order][np.searchsorted(cdf, p - 1e-12)]


def in_band(iv, values, weights):
    """Both ends of a 95% percentile interval from 20000 replicates lie where an exact quantile at
    0.025 +- 0.005 (or 0.975 +- 0.005) does: ~4.5 Monte-Carlo standard errors either side."""
    q = [exact_quantile(values, weights, p) for p in (0.02, 0.03, 0.97, 0.98)]
    eps = 1e-9  # an end can sit on an atom, summed in another order than here
    return q[0] - eps <= iv.low <= q[1] + eps and q[2] - eps <= iv.high <= q[3] + eps


@pytest.mark.parametrize("data", [
    [[np.array([0.0, 1.3, 3.1])], [np.array([4.2, 6.0, 9.7])]],  # 2 replicates x 1 seed x 3 samples
    [[np.array([0.0, 1.1]), np.array([2.3, 3.0])], [np.array([7.9, 9.2]), np.array([10.4, 12.5])]],  # 2 x 2 x 2
], ids=["2x1x3", "2x2x2"])
def test_three_level_interval_matches_exact_enumeration(data):
    groups = [(x,) for rep in data for x in rep]
    replicate_of = [r for r, rep in enumerate(data) for _ in rep]
    values, weights = exact_bootstrap(data)
    assert weights.sum() == pytest.approx(1.0)
    iv = hierarchical_bootstrap(groups, mean_statistic, n_boot=20000, seed=0, replicate_of=replicate_of)
    assert in_band(iv, values, weights)
    assert iv.estimate == pytest.approx(np.mean([x.mean() for x in data[0] + data[1]]))
    assert np.sum(values * weights) == pytest.approx(iv.estimate)  # the bootstrap of the mean is unbiased

    # The band can tell the designs apart: without the replicate draw (each model kept once) the
    # exact distribution is far narrower, and its interval falls outside the band.
    without = exact_bootstrap(data, replicate_level=False)
    for p, side in ((0.025, slice(0, 2)), (0.975, slice(2, 4))):
        band = [exact_quantile(values, weights, q) for q in (0.02, 0.03, 0.97, 0.98)][side]
        assert not band[0] <= exact_quantile(*without, p) <= band[1]
    if len(data[0]) > 1:  # ignoring replicate_of (seeds drawn from all models at once) is caught too
        flat = hierarchical_bootstrap(groups, mean_statistic, n_boot=20000, seed=0)
        assert not in_band(flat, values, weights)
        assert flat.high - flat.low < 0.92 * (iv.high - iv.low)  # 0.86 here


def test_three_level_loop_and_batched_paths_agree():
    rng = np.random.default_rng(12)
    groups = [(rng.random(n) < 0.6,) for n in (20, 35, 28, 41, 30, 25)]  # unequal sizes
    replicate_of = [0, 0, 1, 1, 2, 2]
    batched = hierarchical_bootstrap(groups, mean_statistic, n_boot=500, seed=7, replicate_of=replicate_of)
    looped = hierarchical_bootstrap(groups, unbatched(mean_statistic), n_boot=500, seed=7, replicate_of=replicate_of)
    assert batched == looped  # exact: sums of 0/1 are exact in float64
    assert batched != hierarchical_bootstrap(groups, mean_statistic, n_boot=500, seed=7)  # the level is used

    feats = [feature_sets(8, 10, 5, seed=s) for s in range(4)]
    for paired in (False, True):  # paired: the real and fake sets have different sizes
        feats_p = [(r[:8], f[:8]) for r, f in feats] if paired else feats
        b = hierarchical_bootstrap(feats_p, frechet_distance_features, n_boot=60, seed=1, replicate_of=[2, 2, 0, 0],
                                   paired=paired)
        lo = hierarchical_bootstrap(feats_p, unbatched(frechet_distance_features), n_boot=60, seed=1,
                                    replicate_of=[2, 2, 0, 0], paired=paired)
        np.testing.assert_allclose([b.estimate, b.low, b.high], [lo.estimate, lo.low, lo.high], rtol=1e-10)


def test_replicate_labels_only_group():
    """Only which groups share a replicate matters: not the labels' values, nor interleaving."""
    rng = np.random.default_rng(13)
    g = [(rng.normal(size=15),) for _ in range(6)]
    want = hierarchical_bootstrap(g, mean_statistic, n_boot=300, replicate_of=[0, 0, 1, 1, 2, 2])
    assert hierarchical_bootstrap([g[0], g[2], g[4], g[1], g[3], g[5]], mean_statistic, n_boot=300,
                                  replicate_of=[0, 1, 2, 0, 1, 2]) == want
    assert hierarchical_bootstrap([g[2], g[3], g[4], g[5], g[0], g[1]], mean_statistic, n_boot=300,
                                  replicate_of=[7, 7, 9, 9, -1, -1]) == want


def test_paired_difference_matches_scipy_paired_bootstrap():
    rng = np.random.default_rng(14)
    a = rng.normal(1.0, 1.0, 30)
    b = a - 0.4 + 0.5 * rng.normal(size=30)  # correlated with a: pairing matters
    iv = paired_difference(a, b, np.zeros(30, int), n_boot=20000)
    ref = scipy.stats.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True,
                                vectorized=True, method="percentile", n_resamples=20000,
                                rng=np.random.default_rng(0)).confidence_interval
    width = ref.high - ref.low
    assert iv.estimate == pytest.approx(np.mean(a - b), abs=1e-12)
    assert iv.low == pytest.approx(ref.low, abs=0.04 * width)
    assert iv.high == pytest.approx(ref.high, abs=0.04 * width)
    unpaired = scipy.stats.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                     vectorized=True, method="percentile", n_resamples=2000,
                                     rng=np.random.default_rng(0)).confidence_interval
    assert iv.high - iv.low < 0.7 * (unpaired.high - unpaired.low)  # the tolerance can tell them apart


def test_paired_difference_builds_one_group_per_replicate_and_seed():
    rng = np.random.default_rng(15)
    reps, seeds = np.repeat([0, 1], 24), np.tile(np.repeat([0, 1, 2], 8), 2)
    a, b = rng.normal(size=48), rng.normal(size=48)
    diff = a - b
    # No replicate_index: what gradcheck.sensitivity's _paired_change computed.
    two = hierarchical_bootstrap([(diff[seeds == s],) for s in np.unique(seeds)], mean_statistic, n_boot=400, seed=2)
    assert paired_difference(a, b, seeds, n_boot=400, seed=2) == two
    three = hierarchical_bootstrap([(diff[(reps == r) & (seeds == s)],) for r in (0, 1) for s in (0, 1, 2)],
                                   mean_statistic, n_boot=400, seed=2, replicate_of=[0, 0, 0, 1, 1, 1])
    assert paired_difference(a, b, seeds, reps, n_boot=400, seed=2) == three
    order = np.lexsort((reps, seeds))  # seed-major listing; order within each (replicate, seed) kept
    assert paired_difference(a[order], b[order], seeds[order], reps[order], n_boot=400, seed=2) == three


def test_paired_arrays_share_one_row_draw():
    x = np.random.default_rng(16).normal(size=20)

    def gap(u, v):
        return float(np.mean(u) - np.mean(v))

    gap.batched = lambda u, v: u.mean(axis=1) - v.mean(axis=1)
    for stat in (gap, unbatched(gap)):
        assert hierarchical_bootstrap([(x, x)], stat, n_boot=200, paired=True) == Interval(0.0, 0.0, 0.0)
        unpaired = hierarchical_bootstrap([(x, x)], stat, n_boot=200)
        assert unpaired.high - unpaired.low > 0.3
    # A paired group resamples as one array would: (x, y) with mean(u - v) is (x - y,) with the mean.
    y = np.random.default_rng(17).normal(size=20)
    assert hierarchical_bootstrap([(x, y), (y, x)], lambda u, v: float(np.mean(u - v)), n_boot=300, paired=True) \
        == hierarchical_bootstrap([(x - y,), (y - x,)], unbatched(mean_statistic), n_boot=300)

    # The intended use: FID(real, a) - FID(real, b), a and b from the same noise, three levels.
    def fid_gap(real, fa, fb):
        return frechet_distance_features(real, fa) - frechet_distance_features(real, fb)

    fid_gap.batched = lambda real, fa, fb: (frechet_distance_features.batched(real, fa)
                                            - frechet_distance_features.batched(real, fb))
    groups = [(r[:10], f, f) for r, f in (feature_sets(12, 10, 4, seed=s) for s in range(4))]
    assert hierarchical_bootstrap(groups, fid_gap, n_boot=50, replicate_of=[0, 0, 1, 1], paired=True) \
        == Interval(0.0, 0.0, 0.0)


def test_replicate_and_pairing_errors_are_named():
    x = np.ones(5)
    with pytest.raises(ValueError, match=r"same number of groups.*\{0: 2, 1: 1\}"):
        hierarchical_bootstrap([(x,), (x,), (x,)], mean_statistic, replicate_of=[0, 0, 1])
    with pytest.raises(ValueError, match="3 groups"):
        hierarchical_bootstrap([(x,), (x,), (x,)], mean_statistic, replicate_of=[0, 1])
    with pytest.raises(ValueError, match="integer"):
        hierarchical_bootstrap([(x,), (x,)], mean_statistic, replicate_of=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"group 1 has lengths \[5, 4\]"):
        hierarchical_bootstrap([(x, x), (x, x[:4])], lambda u, v: 0.0, paired=True)
    hierarchical_bootstrap([(x, x[:4])], lambda u, v: 0.0, n_boot=5)  # unpaired: any lengths
    a = np.arange(6.0)
    with pytest.raises(ValueError, match="2 of 6 samples have NaN"):
        paired_difference(np.where(a < 2, np.nan, a), a, np.zeros(6, int))
    with pytest.raises(ValueError, match="1-D of one length"):
        paired_difference(a, a[:5], np.zeros(6, int))
    with pytest.raises(ValueError, match="replicate_index"):
        paired_difference(a, a, np.zeros(6, int), np.zeros(5, int))


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
