"""Verdicts follow from the intervals alone: checked on intervals made by hand."""

import pandas as pd
import pytest

from gradcheck.findings import (FAILS, HOLDS, UNCLEAR, Estimate, approaches, better, check_claims, combine, render,
                                similar)
from gradcheck.table import COLUMNS


@pytest.mark.parametrize("a, b, higher, verdict", [
    ((0.9, 0.8, 1.0), (0.2, 0.1, 0.3), True, HOLDS),
    ((0.2, 0.1, 0.3), (0.9, 0.8, 1.0), True, FAILS),
    ((0.5, 0.3, 0.7), (0.4, 0.2, 0.6), True, UNCLEAR),
    ((10.0, 8.0, 12.0), (30.0, 25.0, 35.0), False, HOLDS),   # FID: lower is better
    ((30.0, 25.0, 35.0), (10.0, 8.0, 12.0), False, FAILS),
])
def test_better(a, b, higher, verdict):
    assert better(Estimate(*a), Estimate(*b), higher) == verdict


def test_similar_and_approaches_use_the_margin():
    assert similar(Estimate(0.50, 0.45, 0.55), Estimate(0.52, 0.47, 0.57), 0.15) == HOLDS    # at most 0.12 apart
    assert similar(Estimate(0.50, 0.40, 0.60), Estimate(0.55, 0.45, 0.65), 0.15) == UNCLEAR  # up to 0.25 apart
    assert similar(Estimate(0.10, 0.05, 0.15), Estimate(0.60, 0.50, 0.70), 0.15) == FAILS    # at least 0.35 apart
    assert approaches(Estimate(0.86, 0.84, 0.88), Estimate(0.97, 0.95, 0.99), 0.15) == HOLDS
    assert approaches(Estimate(0.30, 0.20, 0.40), Estimate(0.97, 0.95, 0.99), 0.15) == FAILS
    assert approaches(Estimate(0.70, 0.60, 0.80), Estimate(0.97, 0.95, 0.99), 0.15) == UNCLEAR


def test_combine():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, UNCLEAR]) == UNCLEAR
    assert combine([UNCLEAR, FAILS]) == FAILS


def _table():
    """A Table 1 in which the robust classifier wins clearly and nothing else is clear."""
    rows = []
    for clf in ("robust", "nonrobust"):
        for x0 in (False, True):
            for stab in ("none", "adam"):
                acc = 0.9 if clf == "robust" else 0.2
                fid = 5.0 if clf == "robust" else 50.0
                row = dict(classifier=clf, x0=x0, stabiliser=stab, adam=stab == "adam", scale=0.5,
                           n=64, seeds=3, samples_per_seed=64, features="f", target="baseball", confidence=0.95)
                for metric, (v, w) in {"accuracy": (acc, 0.05), "judge_accuracy": (acc, 0.05),
                                       "fooled": (0.1, 0.05), "fid": (fid, 2.0), "kid": (0.01, 0.005),
                                       "cosine_mean": (0.5, 0.3)}.items():
                    row |= {metric: v, f"{metric}_low": v - w, f"{metric}_high": v + w}
                rows.append(row)
    return pd.DataFrame(rows)[COLUMNS]


def test_claims_on_a_made_up_table():
    results = {r["title"]: r for r in check_claims(_table())}
    assert results["A robust classifier guides better than a non-robust one"]["verdict"] == HOLDS
    assert results["x0-hat stabilises the non-robust classifier's gradient"]["verdict"] == UNCLEAR
    assert results["ADAM alone changes little (robust classifier)"]["verdict"] == HOLDS
    assert results["x0-hat + ADAM on the non-robust classifier approaches or beats the robust baseline"][
        "verdict"] == FAILS
    text = render(list(results.values()), _table(), "table1.csv")
    assert "| A robust classifier guides better than a non-robust one | **holds** |" in text
    assert "90.0 [85.0, 95.0]" in text  # robust accuracy with its interval, in percent


def test_a_claim_whose_cells_were_not_run_says_so():
    table = _table()
    results = check_claims(table[table.stabiliser == "none"])
    adam = [r for r in results if "ADAM" in r["title"]]
    assert adam and all(r["verdict"] == "not run" for r in adam)
