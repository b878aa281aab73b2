"""The workflow's plan (gradcheck/plan.py), unit by unit: cells, models, seeds, flags and the config checks.

tests/test_workflow.py checks the same decisions through Snakemake's dry runs; these reach every branch
in milliseconds.
"""

from pathlib import Path

import pytest

from gradcheck.plan import (HEADLINE_CELL, Plan, cli_flags, fmt_scale, relevant_settings, rep_index, rep_suffix,
                            replicate_seeds)
from config_loading import load_config
from gradcheck.settings import REPLICATE_STRIDE

ROOT = Path(__file__).resolve().parents[1]


def plan(*overlays):
    return Plan(load_config(*overlays))


def test_default_grid_is_the_papers_eight_cells_and_the_ablation_four():
    p = plan()
    grid = p.cells("grid")
    assert len(grid) == 8 and {c["scale"] for c in grid} == {"0.5"}
    assert {(c["classifier"], c["x0"], c["stabiliser"]) for c in grid} == {
        (c, x, s) for c in ("robust", "nonrobust") for x in ("false", "true") for s in ("none", "adam")}
    assert [c["scale"] for c in p.cells("ablation")] == ["0", "0.25", "0.5", "1"]
    assert len(p.all_cells()) == 8 + 3  # the ablation's s = 0.5 cell is a grid cell


def test_model_names_round_trip_and_only_trained_models_are_replicated():
    p = plan({"replicates": 3, "replicate_ddpm": True})
    for name, parsed in [("ddpm", ("ddpm", 400, 0)), ("robust_T25_r2", ("robust", 25, 2)),
                         ("nonrobust_r1", ("nonrobust", 400, 1)), ("judge", ("judge", 400, 0))]:
        assert p.parse_model(name) == parsed
        assert p.model_name(parsed[0], parsed[1], parsed[2]) == name
    assert p.model_name("judge", replicate=2) == "judge" and p.model_name("features", replicate=1) == "features"
    assert p.ddpm_path(replicate=1) == "results/models/ddpm_r1"
    assert p.classifier_path("robust", 25, 2) == "results/models/robust_T25_r2.pt"
    assert set(p.run_models()) == {"ddpm", "ddpm_r1", "ddpm_r2", "robust", "robust_r1", "robust_r2", "nonrobust",
                                   "nonrobust_r1", "nonrobust_r2", "judge", "features"}


def test_replicates_share_one_ddpm_unless_replicate_ddpm_is_set():
    p = plan({"replicates": 3})
    assert p.ddpm_replicates == [0] and {p.ddpm_path(replicate=r) for r in range(3)} == {"results/models/ddpm"}
    assert {name for name in p.run_models() if name.startswith("ddpm")} == {"ddpm"}
    assert [r["ddpm_seed"] for r in p.replicate_record()] == [0, 0, 0]
    assert [r["robust_seed"] for r in p.replicate_record()] == [1, 1001, 2001]
    # the spread study trains the other DDPMs itself: only (DDPM 0, guide 0) is a grid cell
    assert p.ddpm_replicate_path(ddpm_replicate=2) == "results/models/ddpm_r2"
    grid_pairs = [(d, g) for d, g, path in p.spread_cells() if "/spread/" not in path]
    assert grid_pairs == [(0, 0)]
    own = plan({"replicates": 3, "replicate_ddpm": True})
    assert own.ddpm_replicates == [0, 1, 2] and own.ddpm_path(replicate=2) == "results/models/ddpm_r2"
    assert [(d, g) for d, g, path in own.spread_cells() if "/spread/" not in path] == [(0, 0), (1, 1), (2, 2)]


def test_a_brought_model_is_not_replicated(tmp_path):
    p = Plan.__new__(Plan)  # the naming alone: no file to check
    p.cfg = load_config({"replicates": 2, "classifiers": {"robust": {"pretrained": str(tmp_path / "r.pt")}}})
    assert p.model_name("robust", replicate=1) == "robust" and p.model_name("nonrobust", replicate=1) == "nonrobust_r1"


def test_replicate_seeds_are_distinct_and_recorded():
    p = plan({"replicates": 3, "replicate_ddpm": True, "sampling": {"seeds": [0, 1, 2]}})
    record = p.replicate_record()
    assert [r["ddpm_seed"] for r in record] == [0, 1000, 2000]
    assert [r["nonrobust_seed"] for r in record] == [2, 1002, 2002]
    sampling = [s for r in record for s in r["sampling_seeds"]]
    assert len(set(sampling)) == len(sampling) == 9
    assert replicate_seeds([4, 5], 2) == [4 + 2 * REPLICATE_STRIDE, 5 + 2 * REPLICATE_STRIDE]
    assert [rep_index(rep_suffix(r)) for r in range(4)] == [0, 1, 2, 3] and rep_suffix(0) == ""


def test_training_flags_carry_each_replicates_seed_and_the_roles_architecture():
    p = plan({"replicates": 2})
    assert "--seed 1000 " in p.ddpm_training_flags("ddpm_r1") + " "
    assert "--timesteps 25" in p.ddpm_training_flags("ddpm_T25")
    judge = p.classifier_training_flags("judge")
    assert "--architecture shufflenet_v2_x0_5" in judge and "--seed 3" in judge
    assert "--architecture" not in p.classifier_training_flags("nonrobust_r1")
    assert "--seed 1002" in p.classifier_training_flags("nonrobust_r1")
    assert p.classifier_mode("robust_T25_r1") == "noisy" and p.classifier_mode("features") == "clean"


def test_cli_flags_are_sorted_and_spelled_for_the_cli():
    assert cli_flags(seeds=[0, 1], clip_x0=True, lr=0.001) == "--clip-x0 true --lr 0.001 --seeds 0 1"
    assert fmt_scale("1e1") == fmt_scale(10.0) == "10"


def test_only_settings_that_can_change_a_cell_are_its_params():
    settings = plan().settings["default"]
    unguided = relevant_settings({"scale": "0"}, settings)
    assert set(unguided) == {"steps", "unet_dtype"}
    x_t = relevant_settings(dict(scale="0.5", x0="false", stabiliser="none"), settings)
    assert "clip_x0" not in x_t and "adam_eps" not in x_t
    x0_adam = relevant_settings(dict(scale="0.5", x0="true", stabiliser="adam"), settings)
    assert x0_adam["clip_x0"] is True and x0_adam["adam_eps"] == 1e-8


def test_a_methods_cell_takes_only_the_settings_that_can_change_it():
    p = plan(ROOT / "configs/methods.yaml")
    baseline = p.method_flags("robust-baseline", "none", 0)
    assert "--x0-hat false" in baseline and "--clip-x0" not in baseline and "--adam-eps" not in baseline
    mpgd_adam = p.method_flags("mpgd", "adam", 0)
    assert "--method mpgd" in mpgd_adam and "--clip-x0 true" in mpgd_adam and "--adam-eps 1e-08" in mpgd_adam
    assert "--steps 200" in mpgd_adam and "--steps 400" in p.method_flags("x0_hat_400", "none", 0)
    freedom = p.method_flags("freedom", "none", 0)
    assert "--method freedom" in freedom and "--recurrence" not in freedom  # K = 2 is the preset's own


def test_a_variant_that_cannot_change_a_cell_reuses_the_defaults_samples():
    p = plan(ROOT / "configs/clipping.yaml")
    x_t = dict(classifier="nonrobust", x0="false", stabiliser="adam", scale="0.5")
    assert p.study_metrics("no_clip", x_t).startswith("results/sensitivity/default/")
    assert p.study_metrics("no_clip", HEADLINE_CELL | {"scale": "0.5"}).startswith("results/sensitivity/no_clip/")
    assert len(p.study_jobs()) == 4  # two cells under two variants


def test_the_headline_history_joins_only_at_the_earlier_settings():
    assert plan().history_cell() is None  # the default clips x0-hat; the earlier DDPMs did not
    metrics, variant = plan(ROOT / "configs/clipping.yaml").history_cell()
    assert variant == "no_clip" and metrics.endswith("no_clip/metrics/nonrobust/x0-true_adam_s-0.5.json")
    assert plan({"guidance": {"clip_x0": False}}).history_cell() == (plan().headline_metrics(), None)
    assert plan({"grid": {"scale": 1}, "guidance": {"clip_x0": False}}).history_cell() is None


def test_outputs_follow_the_config():
    outputs = plan().all_outputs()
    assert "results/figures/headline_vs_ddpm.png" in outputs and "results/sensitivity.csv" not in outputs
    assert "results/figures/grids/nonrobust_x0-true_adam_s-0.5.png" in outputs
    no_adam = plan({"grid": {"stabilisers": ["none"]}}).all_outputs()
    assert "results/figures/headline_vs_ddpm.png" not in no_adam
    assert "results/sensitivity.csv" in plan(ROOT / "configs/clipping.yaml").all_outputs()


def test_data_flags_name_every_data_setting():
    flags = plan().data_flags()
    assert "--classes basketball soccer tennis baseball" in flags and "--scale-range 0.4 0.75" in flags
    assert plan(ROOT / "configs/digits.yaml").data_flags() == "--seed 0 --size 16 --val-fraction 0.1"


@pytest.mark.parametrize("overlay, message", [
    ({"ddpm": {"attention": [False, False]}}, "config: ddpm.attention has 2 flags but block_out_channels has 3 levels"),
    ({"ddpm": {"timesteps": 20}}, "config: ddpm.scale_betas needs ddpm.timesteps above 20, got 20"),
    ({"sampling": {"steps": 500}}, "config: sampling.steps (500) exceeds ddpm.timesteps (400)"),
    ({"sampling": {"target": "golfball"}}, "sampling.target 'golfball' is not among data.classes"),
    ({"replicates": 3.0}, "config: replicates must be a whole number"),
    ({"replicates": 2, "sampling": {"seeds": [0, 1000]}}, "config: sampling.seeds [0, 1000] overlap across the 2"),
    ({"metrics": {"fid_n": 40}}, "config: metrics.fid_n (40) exceeds sampling.num_samples"),
    ({"replicates": 90}, "x 1 sampling.seeds x 90 replicates exceeds data.train_per_class (2000)"),
    ({"classifiers": {"seeds": {"features": 3}, "features_architecture": "shufflenet_v2_x0_5"}},
     "the FID feature network would be the judge"),
    ({"sensitivity": {"cells": [{"classifier": "robust", "x0": True, "stabiliser": "none"}],
                      "variants": {"a": {"sampling": {"steps": 10}}}, "sweep": {"variant": "b", "scales": [1]}}},
     "sensitivity.sweep.variant 'b' is not a variant; choose one of default, a"),
    ({"metrics": {"fid_features": "inception"}}, "metrics.inception_weights is not set"),
])
def test_inconsistent_configs_are_refused_naming_the_keys(overlay, message):
    with pytest.raises(ValueError) as err:
        plan(overlay)
    assert message in str(err.value)


def test_the_schema_refuses_bad_replicate_counts():
    for bad in (0, -1, 1.5, "three"):
        with pytest.raises(Exception, match="replicates"):
            load_config({"replicates": bad})
