"""Training replicates end to end: the tiny run, grown from 1 to 2 replicates, trains and samples only
the new replicate's guides and cells (the replicates share the DDPM unless replicate_ddpm is set), pools
both in Table 1 and the verdicts, and records every replicate's seeds."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY, snakemake
from test_workflow import planned_rules

pytestmark = pytest.mark.e2e

TARGETS = ["results/findings.md", "results/figures/replicates.png", "results/figures/headline_vs_ddpm.png",
           "results/run_record.json", "results/classifiers.csv"]


def overlay(tmp_path, replicates, name, **sections):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"replicates": replicates, "sensitivity": None, **sections}))
    return path


def jobs(proc, rule):
    """The wildcards of every planned job of ``rule``."""
    return re.findall(rf"^rule {rule}:\n(?:.*\n)*?    wildcards: (.*)$", proc.stdout, flags=re.M)


@pytest.fixture(scope="module")
def grown(run, tmp_path_factory):
    """The tiny run copied (times kept, so nothing of it is stale) and grown to 2 replicates."""
    workdir = tmp_path_factory.mktemp("replicates") / "run"
    shutil.copytree(run, workdir, symlinks=True)
    # the claims' eight cells (no EMA): replicate 1 samples only what the verdicts need
    two = overlay(workdir.parent, 2, "two", grid={"stabilisers": ["none", "adam"]})
    plan = snakemake(workdir, "-n", *TARGETS, configfile=[TINY, two])
    snakemake(workdir, "--cores", "2", *TARGETS, "--resources", "gpu=1", configfile=[TINY, two])
    return workdir, plan


def test_a_new_replicate_trains_and_samples_only_its_own_models(grown):
    _, plan = grown
    trained = jobs(plan, "train_ddpm") + jobs(plan, "train_classifier")
    assert sorted(trained) == ["model=nonrobust_r1", "model=robust_r1"]  # no DDPM, no judge, no features
    sampled = jobs(plan, "sample_cell")
    assert sampled and all(w.endswith("rep=_r1") for w in sampled), sampled


def test_replicates_have_their_own_seeds_and_weights(grown):
    workdir, _ = grown
    record = json.loads((workdir / "results/run_record.json").read_text())
    assert [r["ddpm_seed"] for r in record["replicates"]] == [0, 0]  # one DDPM, shared
    assert [r["robust_seed"] for r in record["replicates"]] == [1, 1001]
    assert [r["sampling_seeds"] for r in record["replicates"]] == [[0, 1], [1000, 1001]]
    training = json.loads((workdir / "results/models/robust_r1.json").read_text())
    assert training["config"]["seed"] == 1001
    models = record["models"]
    assert "ddpm_r1" not in models and not (workdir / "results/models/ddpm_r1").exists()
    assert models["robust"]["sha256"] != models["robust_r1"]["sha256"]
    with np.load(workdir / "results/samples/robust/x0-false_none_s-5_r1.npz") as cell:
        assert cell["seeds"][0] == 1000 * 1_000_000  # sample 0 of sampling seed 1000


def test_table_and_verdicts_pool_both_replicates(grown, run):
    workdir, _ = grown
    table = pd.read_csv(workdir / "results/table1.csv")
    assert len(table) == 8 and (table.replicates == 2).all() and (table.seeds == 2).all()
    cell = json.loads((workdir / "results/metrics/nonrobust/x0-true_adam_s-5.json").read_text())
    assert [r["replicate"] for r in cell["per_replicate"]] == [0, 1]
    judge = np.array(cell["per_sample"]["judge"])
    reps = np.array(cell["per_sample"]["replicate"])
    assert cell["judge_accuracy"] == pytest.approx(judge.mean())
    assert cell["per_replicate"][1]["judge_accuracy"] == pytest.approx(judge[reps == 1].mean())
    # replicate 0's outcomes are the one-replicate run's, sample for sample
    alone = json.loads((run / "results/metrics/nonrobust/x0-true_adam_s-5.json").read_text())
    assert cell["per_sample"]["judge"][:len(alone["per_sample"]["judge"])] == alone["per_sample"]["judge"]
    findings = (workdir / "results/findings.md").read_text()
    assert len(re.findall(r"^\| .+? \| \*\*.+?\*\* \| \d of 2 \|", findings, flags=re.M)) == 7
    assert "2 training replicate(s)" in findings
    classifiers = pd.read_csv(workdir / "results/classifiers.csv")
    assert set(classifiers.classifier) == {"robust", "robust_r1", "nonrobust", "nonrobust_r1", "judge", "features"}
    ddpm = pd.read_csv(workdir / "results/ddpm.csv")
    assert set(ddpm.replicate) == {0} and ddpm.final.sum() == 1  # the one DDPM's quality


def test_a_third_replicate_plans_only_its_own_jobs(grown):
    workdir, _ = grown
    # 3 replicates x 2 seeds x 8 FID images would need 48 of the 40 real baseballs: 6 each fit
    three = overlay(workdir.parent, 3, "three", grid={"stabilisers": ["none", "adam"]},
                    metrics={"fid_features": "features", "fid_n": 6, "n_boot": 100})
    plan = snakemake(workdir, "-n", *TARGETS, configfile=[TINY, three])
    trained = jobs(plan, "train_ddpm") + jobs(plan, "train_classifier")
    assert sorted(trained) == ["model=nonrobust_r2", "model=robust_r2"]
    assert all(w.endswith("rep=_r2") for w in jobs(plan, "sample_cell"))
    assert planned_rules(plan) >= {"evaluate_cell", "table1", "findings"}  # the pooled outputs, of course


def test_replicate_ddpm_trains_each_replicates_ddpm_and_resamples_only_its_cells(grown):
    workdir, _ = grown
    own = overlay(workdir.parent, 2, "own", grid={"stabilisers": ["none", "adam"]}, replicate_ddpm=True)
    plan = snakemake(workdir, "-n", *TARGETS, configfile=[TINY, own])
    assert jobs(plan, "train_ddpm") == ["ddpm=ddpm_r1"] and jobs(plan, "train_classifier") == []
    sampled = jobs(plan, "sample_cell")
    assert sampled and all(w.endswith("rep=_r1") for w in sampled), sampled
    assert jobs(plan, "ddpm_quality") == ["rep=_r1"]


@pytest.mark.parametrize("value", [0, -1, 1.5, "three"])
def test_a_bad_replicates_value_stops_before_any_job(tmp_path, value):
    """0, negative, fractional or not a number: refused by the schema or the config check, naming the key."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"replicates": value}))
    proc = snakemake(tmp_path, "-n", configfile=[TINY, path], check=False)
    assert proc.returncode != 0 and planned_rules(proc) == set()
    assert "replicates" in proc.stdout + proc.stderr


def test_a_feature_network_that_is_the_judge_is_refused(tmp_path):
    path = tmp_path / "same.yaml"
    path.write_text(yaml.safe_dump({"classifiers": {"features_architecture": "shufflenet_v2_x0_5",
                                                    "seeds": {"robust": 1, "nonrobust": 2, "judge": 3, "features": 3}}}))
    proc = snakemake(tmp_path, "-n", configfile=[TINY, path], check=False)
    assert proc.returncode != 0 and planned_rules(proc) == set()
    assert "the FID feature network would be the judge" in proc.stdout + proc.stderr
    path.write_text(yaml.safe_dump({"metrics": {"fid_features": "judge"}}))
    proc = snakemake(tmp_path, "-n", configfile=[TINY, path], check=False)
    assert proc.returncode != 0 and "fid_features" in proc.stdout + proc.stderr
