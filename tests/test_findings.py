"""Verdicts follow from the paired intervals alone: checked on outcomes made by hand."""

import numpy as np
import pandas as pd
import pytest

from gradcheck.findings import (FAILS, HOLDS, UNCLEAR, Estimate, approaches, better, check_claims, combine,
                                instrument_check, paired_verdict, render)
from gradcheck.table import columns


@pytest.mark.parametrize("a, b, higher, verdict", [
    ((0.9, 0.8, 1.0), (0.2, 0.1, 0.3), True, HOLDS),
    ((0.2, 0.1, 0.3), (0.9, 0.8, 1.0), True, FAILS),
    ((0.5, 0.3, 0.7), (0.4, 0.2, 0.6), True, UNCLEAR),
    ((10.0, 8.0, 12.0), (30.0, 25.0, 35.0), False, HOLDS),   # FID: lower is better
    ((30.0, 25.0, 35.0), (10.0, 8.0, 12.0), False, FAILS),
])
def test_better_on_two_intervals_decides_fid(a, b, higher, verdict):
    assert better(Estimate(*a), Estimate(*b), higher) == verdict


@pytest.mark.parametrize("kind, diff, verdict", [
    ("better", (0.10, 0.02, 0.18), HOLDS),
    ("better", (-0.10, -0.18, -0.02), FAILS),
    ("better", (0.05, -0.01, 0.11), UNCLEAR),
    ("similar", (0.02, -0.10, 0.14), HOLDS),      # the whole interval within 15 points
    ("similar", (0.10, -0.02, 0.22), UNCLEAR),    # reaches past the margin
    ("similar", (-0.40, -0.55, -0.25), FAILS),    # wholly beyond it
    ("approaches", (-0.10, -0.14, -0.06), HOLDS),  # never more than 15 points below
    ("approaches", (-0.50, -0.60, -0.40), FAILS),
    ("approaches", (-0.15, -0.25, -0.05), UNCLEAR),
])
def test_paired_verdicts_use_the_margin(kind, diff, verdict):
    assert paired_verdict(kind, Estimate(*diff), 0.15) == verdict


def test_approaches_on_two_intervals_is_the_sensitivity_studys_reach():
    assert approaches(Estimate(0.86, 0.84, 0.88), Estimate(0.97, 0.95, 0.99), 0.15) == HOLDS
    assert approaches(Estimate(0.30, 0.20, 0.40), Estimate(0.97, 0.95, 0.99), 0.15) == FAILS


def test_combine():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, UNCLEAR]) == UNCLEAR
    assert combine([UNCLEAR, FAILS]) == FAILS


KEYS = [(clf, x0, stab) for clf in ("robust", "nonrobust") for x0 in (False, True) for stab in ("none", "adam")]


def _outcomes(rate, n, rng):
    """n 0/1 outcomes with exactly round(rate * n) ones, shuffled."""
    ones = int(round(rate * n))
    return rng.permutation([1] * ones + [0] * (n - ones)).tolist()


def _inputs(judge_rate, cosine=None, replicates=3, seeds=1, n=32, seed=0):
    """Table 1 and per-sample cells from per-cell judge rates (the guide says the same); every cell's
    intervals are made by hand, only the per-sample outcomes decide."""
    rng = np.random.default_rng(seed)
    rows, cells = [], {}
    size = replicates * seeds * n
    for key in KEYS:
        clf, x0, stab = key
        judge = _outcomes(judge_rate[key], size, rng)
        cos = cosine.get(key, 0.0) if cosine else 0.0
        cos_values = (cos + 0.01 * rng.standard_normal(size)).tolist()
        fid = 5.0 if clf == "robust" else 50.0
        row = dict(classifier=clf, x0=x0, stabiliser=stab, adam=stab == "adam", scale=0.5, replicates=replicates,
                   n=n, seeds=seeds, samples_per_seed=n, features="f", target="baseball", confidence=0.95)
        for metric, (v, w) in {"accuracy": (np.mean(judge), 0.05), "judge_accuracy": (np.mean(judge), 0.05),
                               "fooled": (0.1, 0.05), "fid": (fid, 2.0), "kid": (0.01, 0.005),
                               "cosine_mean": (cos, 0.01), "cosine_late": (cos, 0.01),
                               "informativeness": (0.5, 0.05), "staleness": (1.0, 0.0),
                               "spread": (0.6, 0.02)}.items():
            row |= {metric: v, f"{metric}_low": v - w, f"{metric}_high": v + w}
        row |= dict(unet_forward=400, unet_backward=400 if x0 else 0, classifier_forward=400, classifier_backward=400)
        rows.append(row)
        cells[key] = {**row, "path": f"{key}.json", "per_sample": {
            "replicate": np.repeat(np.arange(replicates), seeds * n).tolist(),
            "seed_index": np.tile(np.repeat(np.arange(seeds), n), replicates).tolist(),
            "judge": judge, "guide": judge, "cosine": cos_values, "cosine_late": cos_values}}
    return pd.DataFrame(rows)[columns()], cells


def _claims(rates, **kw):
    table, cells = _inputs(rates, **kw)
    return {r["title"]: r for r in check_claims(table, cells, n_boot=400)}, table


ROBUST_WINS = {key: 0.9 if key[0] == "robust" else 0.2 for key in KEYS}


def test_better_claims_from_paired_outcomes():
    results, _ = _claims(ROBUST_WINS)
    robust = results["A robust classifier guides better than a non-robust one"]
    assert robust["verdict"] == HOLDS and robust["replicates"] == [HOLDS] * 3
    reversed_rates = {key: 1.0 - v for key, v in ROBUST_WINS.items()}
    assert _claims(reversed_rates)[0]["A robust classifier guides better than a non-robust one"]["verdict"] == FAILS
    # equal rates: the paired difference straddles 0
    assert _claims({key: 0.5 for key in KEYS})[0]["x0-hat improves the non-robust classifier's samples"][
        "verdict"] == UNCLEAR


def test_similar_and_approaches_claims_from_paired_outcomes():
    results, _ = _claims(ROBUST_WINS)
    assert results["ADAM alone changes little (robust classifier)"]["verdict"] == HOLDS  # same rates
    assert results["x0-hat + ADAM on the non-robust classifier approaches or beats the robust baseline"][
        "verdict"] == FAILS  # 20% against 90%
    far = dict(ROBUST_WINS) | {("nonrobust", False, "adam"): 0.9}  # ADAM lifts 20% to 90%
    assert _claims(far)[0]["ADAM alone changes little (non-robust classifier)"]["verdict"] == FAILS
    close = dict(ROBUST_WINS) | {("nonrobust", True, "adam"): 0.875}
    assert _claims(close)[0]["x0-hat + ADAM on the non-robust classifier approaches or beats the robust baseline"][
        "verdict"] == HOLDS


def test_stability_claim_decides_on_all_steps_and_shows_the_late_window():
    cosine = {("nonrobust", True, "none"): 0.3, ("nonrobust", False, "none"): 0.0}
    results, table = _claims(ROBUST_WINS, cosine=cosine)
    claim = results["x0-hat stabilises the non-robust classifier's gradient"]
    assert claim["verdict"] == HOLDS
    deciding = [r for r in claim["rows"] if r["decides"]]
    assert [r["metric_key"] for r in deciding] == ["cosine"]
    assert any(r["metric_key"] == "cosine_late" and r["verdict"] == HOLDS for r in claim["rows"])
    text = render(list(results.values()), table, "table1.csv")
    assert "All steps decide" in text and "Holds in 3 of 3 replicates" in text


def test_replicates_holding_counts_each_replicate_on_its_own():
    table, cells = _inputs(ROBUST_WINS)
    a, b = cells[("robust", False, "none")], cells[("nonrobust", False, "none")]
    # in replicate 2 the non-robust cell says the target as often as the robust one
    b["per_sample"]["judge"][64:] = a["per_sample"]["judge"][64:]
    claim = {r["title"]: r for r in check_claims(table, cells, n_boot=400)}[
        "A robust classifier guides better than a non-robust one"]
    assert claim["replicates"] == [HOLDS, HOLDS, UNCLEAR]
    assert "| 2 of 3 |" in render([claim], table, "t.csv")


def test_cells_from_other_seeds_are_not_paired():
    table, cells = _inputs(ROBUST_WINS)
    cells[("nonrobust", False, "none")]["per_sample"]["seed_index"][0] = 1
    with pytest.raises(ValueError, match="not sampled from the same replicates and seeds"):
        check_claims(table, cells)


def test_a_weak_judge_marks_every_verdict():
    results, table = _claims(ROBUST_WINS)
    classifiers = pd.DataFrame({"classifier": ["robust", "nonrobust", "judge", "features"],
                                "clean_accuracy": [0.99, 0.98, 0.44, 0.97], "noisy_accuracy": [0.6, 0.3, 0.2, 0.3]})
    instruments = instrument_check(classifiers, 0.9)
    assert instruments["unfit"] == ["judge"] and "44.0% clean validation accuracy" in instruments["warnings"][0]
    text = render(list(results.values()), table, "t.csv", instruments)
    summary = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert len(summary) == 7 and all(line.endswith("| unfit: judge |") for line in summary)
    assert text.count("**Unfit instrument**") == 7 and "**Warning**" in text


def test_a_weak_guide_marks_only_the_claims_on_its_cells():
    results, table = _claims(ROBUST_WINS)
    classifiers = pd.DataFrame({"classifier": ["robust", "robust_r1", "nonrobust", "judge"],
                                "clean_accuracy": [0.99, 0.5, 0.98, 0.99], "noisy_accuracy": [0.6, 0.3, 0.3, 0.2]})
    text = render(list(results.values()), table, "t.csv", instrument_check(classifiers, 0.9))
    marked = [line for line in text.splitlines() if line.endswith("| unfit: robust_r1 |")]
    assert len(marked) == 4  # the claims with a robust cell
    assert "| ADAM alone changes little (non-robust classifier) | **inconclusive** |" not in text


def test_a_claim_whose_cells_were_not_run_says_so():
    table, cells = _inputs(ROBUST_WINS)
    results = check_claims(table[table.stabiliser == "none"], cells)
    adam = [r for r in results if "ADAM" in r["title"]]
    assert adam and all(r["verdict"] == "not run" for r in adam)
