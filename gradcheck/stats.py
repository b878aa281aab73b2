"""Confidence intervals for metrics computed from a few sampling seeds of a few samples each.

The paper's numbers (accuracy, FID, KID) come from a handful of sampling seeds with
tens of images each, so a point estimate alone hides how much of a difference between
two guidance settings is noise. :func:`hierarchical_bootstrap` resamples both levels
(seeds, then samples within a seed), optionally the trained models above them too, and
gives a percentile interval. FID and KID are recomputed thousands of times by it, so here
they take feature vectors directly and are computed exactly in a form that is cheap when
there are fewer samples than features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .settings import CONFIDENCE, N_BOOT

ArrayLike = np.ndarray | torch.Tensor

# Replicates passed to a ``.batched`` statistic at once: bounds memory (1000 replicates of
# 64x576 float64 features would be 300 MB per array) without costing speed.
_CHUNK = 256


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

    estimate: float
    low: float
    high: float

    def format(self, fmt: str = "{:.3f}") -> str:
        """``'0.123 [0.100, 0.150]'``."""
        return f"{fmt.format(self.estimate)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"

    def to_dict(self, prefix: str) -> dict[str, float]:
        """``{prefix: estimate, prefix_low: low, prefix_high: high}``, e.g. for a table row."""
        return {prefix: self.estimate, f"{prefix}_low": self.low, f"{prefix}_high": self.high}


def _check_groups(groups: Sequence[Sequence[ArrayLike]]) -> list[tuple[np.ndarray, ...]]:
    if len(groups) == 0:
        raise ValueError("hierarchical_bootstrap needs at least one group (one per sampling seed), got none")
    checked = []
    for i, group in enumerate(groups):
        if len(group) == 0:
            raise ValueError(f"group {i} is empty: it must hold at least one array to resample")
        arrays = tuple(np.asarray(a) for a in group)
        for j, a in enumerate(arrays):
            if a.ndim == 0 or len(a) == 0:
                raise ValueError(f"array {j} of group {i} is empty (shape {a.shape}): nothing to resample")
        checked.append(arrays)
    return checked


def _replicate_members(replicate_of: Sequence[int] | None, n_groups: int) -> list[np.ndarray]:
    """Indices of each replicate's groups, replicates in sorted order, groups in list order."""
    if replicate_of is None:
        return [np.arange(n_groups)]
    labels = np.asarray(replicate_of)
    if labels.ndim != 1 or len(labels) != n_groups:
        raise ValueError(f"replicate_of must give one training replicate per group: {n_groups} groups, "
                         f"replicate_of has shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"replicate_of must hold integer replicate indices, got dtype {labels.dtype}")
    members = [np.flatnonzero(labels == r) for r in np.unique(labels)]
    counts = {int(r): len(m) for r, m in zip(np.unique(labels), members)}
    if len(set(counts.values())) > 1:
        # Unequal counts would make the mean over groups and the mean over replicates differ,
        # and the seed-level draw of a replicate with fewer seeds would be a different design.
        raise ValueError(f"every training replicate must have the same number of groups (sampling seeds), "
                         f"got {counts} (replicate: groups)")
    return members


def hierarchical_bootstrap(groups: Sequence[Sequence[ArrayLike]], statistic: Callable[..., float],
                           n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = 0,
                           correct_bias: bool = False, *, replicate_of: Sequence[int] | None = None,
                           paired: bool = False) -> Interval:
    """Percentile bootstrap interval of the mean over groups of ``statistic(*group)``.

    ``groups`` holds one tuple of arrays per sampling seed, e.g. ``(correct,)`` or
    ``(real_features, fake_features)``. Each replicate draws ``len(groups)`` groups with
    replacement, then resamples the rows of every array of each drawn group with
    replacement (each array on its own), and averages the statistic over the drawn groups.
    The estimate is the statistic on the original data, not the bootstrap mean.

    ``replicate_of`` gives the training replicate (trained model) of each group, for a third,
    outermost level: a model's seeds share its training noise, so they are not independent
    draws. Each bootstrap replicate then draws the training replicates with replacement, within
    each drawn one its groups with replacement, then the rows; its value is the mean over drawn
    replicates of the mean over their drawn groups. Every replicate must have the same number of
    groups (then that is the plain mean over drawn groups, and the estimate the mean over
    groups). Groups are taken replicate by replicate (sorted indices), in list order within one,
    so interleaving the list changes nothing. With one replicate no random number is spent on
    that level, so the result is the same as with ``replicate_of=None``.

    ``paired`` makes all arrays of a group share one row draw (they must have equal lengths):
    for a comparison whose sample i of every array comes from the same noise, e.g.
    ``(real, fake_a, fake_b)`` with statistic FID(real, a) - FID(real, b), resampling the
    arrays independently would add the between-sample noise that pairing cancels.

    ``correct_bias`` shifts the interval by the bootstrap bias (mean of the replicates minus
    the estimate). FID and KID need it: a resample holds only ~63% distinct rows, which
    inflates both, so their plain percentile interval can lie wholly above the estimate.

    If ``statistic`` has a ``batched`` attribute (arrays with a leading replicate axis in,
    one value per replicate out), it is used instead of a Python loop; both paths draw the
    same indices, so they give the same interval for the same ``seed``.
    """
    groups = _check_bootstrap_args(groups, n_boot, confidence, paired)
    members = _replicate_members(replicate_of, len(groups))
    order = np.concatenate(members)  # replicate by replicate; the identity for one replicate
    groups = [groups[g] for g in order]
    estimate = float(np.mean([statistic(*group) for group in groups]))

    rng = np.random.default_rng(seed)
    drawn = _draw_groups(rng, n_boot, len(groups), len(members))
    values = _resampled_values(rng, groups, drawn, statistic, paired)
    alpha = (1 - confidence) / 2
    replicates = values.mean(axis=1)  # equal groups per replicate: = mean over replicates of their means
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    shift = replicates.mean() - estimate if correct_bias else 0.0
    return Interval(estimate, float(low - shift), float(high - shift))


def _check_bootstrap_args(groups, n_boot, confidence, paired):
    groups = _check_groups(groups)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if paired:
        for i, arrays in enumerate(groups):
            if len({len(a) for a in arrays}) > 1:
                raise ValueError(f"paired=True needs the arrays of each group to have equal lengths; group {i} "
                                 f"has lengths {[len(a) for a in arrays]}")
    return groups


def _draw_groups(rng, n_boot, n_groups, n_reps):
    """(n_boot, n_groups) indices of the groups each bootstrap replicate draws: the training replicates
    with replacement, then within each drawn one its groups (groups are ordered replicate by replicate)."""
    if n_reps == 1:
        return rng.integers(0, n_groups, size=(n_boot, n_groups))  # seed level
    per_rep = n_groups // n_reps
    reps_drawn = rng.integers(0, n_reps, size=(n_boot, n_reps))  # replicate level
    local = rng.integers(0, per_rep, size=(n_boot, n_reps, per_rep))  # seed level, within each
    return (reps_drawn[:, :, None] * per_rep + local).reshape(n_boot, n_groups)


def _resampled_values(rng, groups, drawn, statistic, paired):
    """The statistic of every drawn group with its rows resampled (sample level): (n_boot, n_groups)."""
    batched = getattr(statistic, "batched", None)
    n_boot, n_groups = drawn.shape
    values = np.empty((n_boot, n_groups))
    for pos in range(n_groups):
        for g, arrays in enumerate(groups):
            reps = np.flatnonzero(drawn[:, pos] == g)
            if len(reps) == 0:
                continue
            if paired:
                rows = [rng.integers(0, len(arrays[0]), size=(len(reps), len(arrays[0])))] * len(arrays)
            else:
                rows = [rng.integers(0, len(a), size=(len(reps), len(a))) for a in arrays]
            if batched is not None:
                for s in range(0, len(reps), _CHUNK):
                    chunk = slice(s, s + _CHUNK)
                    values[reps[chunk], pos] = batched(*(a[r[chunk]] for a, r in zip(arrays, rows)))
            else:
                for k, rep in enumerate(reps):
                    values[rep, pos] = statistic(*(a[r[k]] for a, r in zip(arrays, rows)))
    return values


def mean_statistic(x: ArrayLike) -> float:
    """Mean of a per-sample vector, e.g. accuracy from a bool vector of correctness."""
    return float(np.mean(np.asarray(x, dtype=np.float64)))


def _mean_batched(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).mean(axis=1)


mean_statistic.batched = _mean_batched


def nanmean_statistic(x: ArrayLike) -> float:
    """Mean over the samples where a value was measured (NaN where none was)."""
    return float(_nanmean_batched(np.asarray(x, dtype=np.float64)[None])[0])


def _nanmean_batched(x: ArrayLike) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample of NaNs only
        return np.nanmean(np.asarray(x, dtype=np.float64), axis=1)


nanmean_statistic.batched = _nanmean_batched


def paired_difference(a: ArrayLike, b: ArrayLike, seed_index: ArrayLike, replicate_index: ArrayLike | None = None,
                      *, n_boot: int = N_BOOT, confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """Hierarchical bootstrap interval of the mean per-sample difference a - b.

    ``a``, ``b``: per-sample values (same length, sample k of a paired with sample k of b: same
    replicate, sampling seed and sample index); ``seed_index``: the sampling seed (group) of each
    sample; ``replicate_index``: the training replicate of each sample (None: one replicate).
    The groups are the (replicate, seed) pairs in sorted order, each holding its samples'
    differences in the given order. Samples with NaN in a or b are an error: dropping them
    silently would unpair the cells' sample counts per seed.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    seeds = np.asarray(seed_index)
    if a.ndim != 1 or a.shape != b.shape or seeds.shape != a.shape:
        raise ValueError(f"a, b and seed_index must be 1-D of one length, got shapes {a.shape}, {b.shape}, "
                         f"{seeds.shape}")
    bad = int(np.count_nonzero(np.isnan(a) | np.isnan(b)))
    if bad:
        raise ValueError(f"{bad} of {len(a)} samples have NaN in a or b; a paired difference needs every pair")
    diff = a - b
    if replicate_index is None:
        groups, replicate_of = [(diff[seeds == s],) for s in np.unique(seeds)], None
    else:
        reps = np.asarray(replicate_index)
        if reps.shape != a.shape:
            raise ValueError(f"replicate_index must give one replicate per sample: {len(a)} samples, "
                             f"replicate_index has shape {reps.shape}")
        pairs = sorted({(r, s) for r, s in zip(reps.tolist(), seeds.tolist())})
        groups = [(diff[(reps == r) & (seeds == s)],) for r, s in pairs]
        replicate_of = [r for r, _ in pairs]
    return hierarchical_bootstrap(groups, mean_statistic, n_boot=n_boot, confidence=confidence, seed=seed,
                                  replicate_of=replicate_of)


def _features(x: ArrayLike, name: str, batched: bool) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64).cpu()
    ndim = 3 if batched else 2
    if t.dim() != ndim or t.shape[-2] < 2:
        shape = "(R, n, d)" if batched else "(n, d)"
        raise ValueError(f"{name} features must have shape {shape} with n >= 2, got {tuple(t.shape)}")
    return t


def _check_pair(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape[-1] != fake.shape[-1] or real.shape[:-2] != fake.shape[:-2]:
        raise ValueError(f"real and fake features do not match: {tuple(real.shape)} vs {tuple(fake.shape)}")


# FID in the n x n space rather than the d x d one. With centred features X_c (m x d) and
# Y_c (n x d), the non-zero eigenvalues of Σ_r Σ_f are those of M Mᵀ / ((m-1)(n-1)),
# M = X_c Y_cᵀ, i.e. the squared singular values of M scaled; so
#     tr sqrtm(Σ_r Σ_f) = ||X_c Y_cᵀ||_* / sqrt((m-1)(n-1)),
# exactly, rank-deficient covariances (n < d, the normal case here) included. The d x d
# sqrtm/eigvals of SciPy/torchmetrics costs 50 ms to over 1 s at d = 576 (CPU-dependent),
# the singular values of a 64 x 64 M under 1 ms, and the bootstrap needs thousands of FIDs.
# It is also more accurate: the d x d routes add the square roots of rounding noise in the
# d - n null directions (~1e-8 relative here). Where a set has more rows than
# features, its rows are first reduced to the R factor of a QR (X_c = Q R, same M spectrum).
# The singular values come from NumPy: on CPU, torch.linalg.svdvals over a batch of small
# matrices was 1.5-5x slower (and slower still with more than one torch thread).
def _frechet_batched(real: ArrayLike, fake: ArrayLike) -> np.ndarray:
    """(R, m, d), (R, n, d) -> (R,) FIDs."""
    x, y = _features(real, "real", True), _features(fake, "fake", True)
    _check_pair(x, y)
    m, n, d = x.shape[1], y.shape[1], x.shape[2]
    mu_x, mu_y = x.mean(dim=1), y.mean(dim=1)
    xc, yc = x - mu_x[:, None], y - mu_y[:, None]
    trace_x = xc.square().sum(dim=(1, 2)) / (m - 1)
    trace_y = yc.square().sum(dim=(1, 2)) / (n - 1)
    if m > d:
        xc = torch.linalg.qr(xc, mode="r").R
    if n > d:
        yc = torch.linalg.qr(yc, mode="r").R
    nuclear = np.linalg.svd((xc @ yc.transpose(1, 2)).numpy(), compute_uv=False).sum(axis=1)
    rest = ((mu_x - mu_y).square().sum(dim=1) + trace_x + trace_y).numpy()
    return rest - 2 * nuclear / ((m - 1) * (n - 1)) ** 0.5


def frechet_distance_features(real: ArrayLike, fake: ArrayLike) -> float:
    """FID between two sets of feature vectors, (m, d) and (n, d), in float64."""
    return float(_frechet_batched(_features(real, "real", False)[None], _features(fake, "fake", False)[None])[0])


frechet_distance_features.batched = _frechet_batched


# Written out rather than torchmetrics.image.kid.poly_mmd: its maximum_mean_discrepancy
# normalises every term by the real count m, so it is only right for m == n, and its
# poly_kernel (f2.T) does not batch. For m == n the two agree (tests/test_stats.py).
def _kid_batched(real: ArrayLike, fake: ArrayLike, degree: int = 3, gamma: float | None = None,
                 coef: float = 1.0) -> np.ndarray:
    """(R, m, d), (R, n, d) -> (R,) unbiased polynomial-kernel MMD² values."""
    x, y = _features(real, "real", True), _features(fake, "fake", True)
    _check_pair(x, y)
    m, n = x.shape[1], y.shape[1]
    gamma = 1.0 / x.shape[2] if gamma is None else gamma

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (gamma * a @ b.transpose(1, 2) + coef) ** degree

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    # Unbiased: i == j pairs are left out. Rows a bootstrap duplicated still count as
    # distinct samples, so k(x_i, x_i) enters off the diagonal and biases KID upwards.
    within_x = (k_xx.sum(dim=(1, 2)) - k_xx.diagonal(dim1=1, dim2=2).sum(dim=1)) / (m * (m - 1))
    within_y = (k_yy.sum(dim=(1, 2)) - k_yy.diagonal(dim1=1, dim2=2).sum(dim=1)) / (n * (n - 1))
    return (within_x + within_y - 2 * k_xy.sum(dim=(1, 2)) / (m * n)).numpy()


def kernel_inception_distance_features(real: ArrayLike, fake: ArrayLike, degree: int = 3,
                                       gamma: float | None = None, coef: float = 1.0) -> float:
    """KID: unbiased MMD² with kernel (gamma·xᵀy + coef)^degree (gamma defaults to 1/d) on the full sets.

    Equals torchmetrics' ``KernelInceptionDistance(subsets=1, subset_size=n)`` when m == n.
    """
    x, y = _features(real, "real", False), _features(fake, "fake", False)
    return float(_kid_batched(x[None], y[None], degree, gamma, coef)[0])


kernel_inception_distance_features.batched = _kid_batched
