"""The spread study's variance components against a hand-written ANOVA and a simulated design."""

import numpy as np
import pytest

from gradcheck import spread
from gradcheck.cli import main
from gradcheck.commands.spread import pair_index


def anova_by_hand(y):
    """The two-way mean squares written out with loops over cells, rows and columns."""
    a, b, n = y.shape
    grand = sum(y[d, g, k] for d in range(a) for g in range(b) for k in range(n)) / (a * b * n)
    row = [sum(y[d, g, k] for g in range(b) for k in range(n)) / (b * n) for d in range(a)]
    col = [sum(y[d, g, k] for d in range(a) for k in range(n)) / (a * n) for g in range(b)]
    cell = [[sum(y[d, g]) / n for g in range(b)] for d in range(a)]
    ss_rows = b * n * sum((r - grand) ** 2 for r in row)
    ss_cols = a * n * sum((c - grand) ** 2 for c in col)
    ss_inter = n * sum((cell[d][g] - row[d] - col[g] + grand) ** 2 for d in range(a) for g in range(b))
    ss_error = sum((y[d, g, k] - cell[d][g]) ** 2 for d in range(a) for g in range(b) for k in range(n))
    return {"ddpm": ss_rows / (a - 1), "guide": ss_cols / (b - 1), "interaction": ss_inter / ((a - 1) * (b - 1)),
            "samples": ss_error / (a * b * (n - 1))}


def test_mean_squares_match_the_anova_written_out():
    y = (np.random.default_rng(0).random((3, 4, 5)) > 0.4).astype(float)
    assert spread.mean_squares(y) == pytest.approx(anova_by_hand(y), rel=1e-12)


def test_components_recover_a_simulated_design():
    rng = np.random.default_rng(1)
    a, b, n = 60, 60, 10
    sd = {"ddpm": 1.0, "guide": 2.0, "interaction": 0.5, "samples": 1.0}
    y = (rng.normal(0, sd["ddpm"], (a, 1, 1)) + rng.normal(0, sd["guide"], (1, b, 1))
         + rng.normal(0, sd["interaction"], (a, b, 1)) + rng.normal(0, sd["samples"], (a, b, n)))
    comps = spread.variance_components(y)
    for key, value in sd.items():
        assert comps[key] == pytest.approx(value ** 2, rel=0.35), key
    shares = spread.between_pair_shares(comps)
    assert sum(shares.values()) == pytest.approx(1.0) and shares["guide"] > shares["ddpm"] > shares["interaction"]


def test_a_guide_that_alone_decides_gets_the_whole_share():
    y = np.zeros((3, 3, 8))
    y[:, 0] = 1.0  # guide 0 always lands on the target, the others never: the DDPM does not matter
    comps = spread.variance_components(y)
    assert comps["ddpm"] == pytest.approx(0) and comps["interaction"] == pytest.approx(0) and comps["guide"] > 0
    pairs, table = spread.spread_table(y, n_boot=200, confidence=0.9)
    assert list(pairs.judge_accuracy) == [1, 0, 0] * 3
    guide = table.set_index("component").loc["guide"]
    assert guide.share_between_pairs == pytest.approx(1.0) and guide.variance_lo <= guide.variance <= guide.variance_hi


def test_the_bootstrap_is_seeded_and_refuses_a_design_without_spread():
    y = (np.random.default_rng(2).random((3, 3, 16)) > 0.5).astype(float)
    assert spread.bootstrap_components(y, 50, 0.95) == spread.bootstrap_components(y, 50, 0.95)
    with pytest.raises(ValueError, match="at least 2 DDPMs, 2 guides"):
        spread.spread_table(y[:1], 50, 0.95)


def test_the_command_names_a_bad_or_missing_pair(tmp_path, caplog):
    with pytest.raises(ValueError, match="D,G=PATH with two replicate numbers, got '0-1'"):
        pair_index("0-1")
    out = [f"--{flag}={tmp_path / name}" for flag, name in (("csv", "s.csv"), ("pairs-csv", "p.csv"),
                                                             ("figure", "s.png"))]
    assert main(["spread", "--cells", "0,0=a.npz", "1,1=b.npz", "--judge", "j.pt", *out]) == 2
    assert "missing 0,1 1,0" in caplog.text
    assert not list(tmp_path.iterdir())
