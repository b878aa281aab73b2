"""The methods study: its table from constructed cells, and the workflow's target on the tiny run."""

import json
import shutil

import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO, TINY, snakemake
from gradcheck.methods_study import build_table, choose_scales, parse_cells

TINY_METHODS = REPO / "configs" / "tiny_methods.yaml"


def _cell(tmp_path, name, method, stabiliser, scale, fid, judge, x0=True, steps=4):
    n = len(judge)
    row = {"classifier": "nonrobust", "method": method, "x0": x0, "stabiliser": stabiliser, "scale": scale,
           "steps": steps, "fid": fid, "fid_low": fid - 1, "fid_high": fid + 1, "replicates": 1, "seeds": 1,
           "samples_per_seed": n, "features": "f", "unet_forward": steps, "unet_backward": steps,
           "classifier_forward": steps, "classifier_backward": steps,
           "per_sample": {"replicate": [0] * n, "seed_index": [0] * n, "judge": judge, "guide": judge}}
    for m in ("judge_accuracy", "accuracy", "fooled", "cosine_mean", "cosine_late", "informativeness"):
        row |= {m: 0.5, f"{m}_low": 0.4, f"{m}_high": 0.6}
    row["judge_accuracy"] = sum(judge) / n
    path = tmp_path / f"{name}_{stabiliser}_{scale}.json"
    path.write_text(json.dumps(row))
    return f"{name}={stabiliser}={scale:g}={path}"


def test_dps_takes_the_scale_with_the_lowest_fid_and_the_others_the_one_they_have(tmp_path):
    specs = [_cell(tmp_path, "x0_hat", "paper", "none", 0.5, 30.0, [1, 0, 1, 0]),
             _cell(tmp_path, "dps", "dps", "none", 0.05, 40.0, [1, 1, 1, 1]),
             _cell(tmp_path, "dps", "dps", "none", 0.2, 25.0, [0, 0, 0, 0]),
             _cell(tmp_path, "dps", "dps", "adam", 0.05, 10.0, [1, 1, 1, 1]),  # lower FID, but stabilised
             _cell(tmp_path, "dps", "dps", "adam", 0.2, 26.0, [0, 0, 1, 0])]
    frame = build_table(parse_cells(specs), n_boot=200)
    assert list(zip(frame.preset, frame.stabiliser, frame.scale)) == [("x0_hat", "none", 0.5), ("dps", "none", 0.2),
                                                                       ("dps", "adam", 0.2)]
    assert frame.scale_rule.tolist() == ["grid.scale", "lowest FID of s = 0.05: 40.0, 0.2: 25.0"] * 1 + \
        ["lowest FID of s = 0.05: 40.0, 0.2: 25.0"]
    dps = frame.iloc[1]  # paired against the paper's x0-hat, sample by sample: 0 - mean([1, 0, 1, 0])
    assert dps.judge_vs_paper == pytest.approx(-0.5) and dps.judge_vs_paper_low <= -0.5 <= dps.judge_vs_paper_high
    assert pd.isna(frame.iloc[2].judge_vs_paper)  # no paper x0-hat with ADAM to pair with
    assert frame.iloc[0].unet_passes == 8


def test_every_method_pairs_with_the_papers_x0_hat_at_the_studys_steps(tmp_path):
    """Not with a preset that spends more steps to match another method's compute, listed after it."""
    specs = [_cell(tmp_path, "x0_hat", "paper", "none", 0.5, 30.0, [1, 0, 1, 0]),
             _cell(tmp_path, "x0_hat_8", "paper", "none", 0.5, 30.0, [1, 1, 1, 1], steps=8),
             _cell(tmp_path, "mpgd", "mpgd", "none", 0.5, 30.0, [1, 1, 0, 0])]
    frame = build_table(parse_cells(specs), n_boot=200).set_index("preset")
    assert pd.isna(frame.loc["x0_hat"].judge_vs_paper)  # the reference itself
    assert frame.loc["x0_hat_8"].judge_vs_paper == pytest.approx(0.5)  # mean([1, 1, 1, 1]) - mean([1, 0, 1, 0])
    assert frame.loc["mpgd"].judge_vs_paper == pytest.approx(0.0)


def test_a_preset_with_one_scale_of_its_own_says_so(tmp_path):
    specs = [_cell(tmp_path, "x0_hat", "paper", "none", 0.5, 30.0, [1, 0, 1, 0]),
             _cell(tmp_path, "dps", "dps", "none", 0.2, 25.0, [0, 0, 0, 0])]
    frame = build_table(parse_cells(specs), own_scales=["dps"], n_boot=50)
    assert frame.scale_rule.tolist() == ["grid.scale", "methods.presets.dps.scales"]


def test_choose_scales_needs_an_unstabilised_cell():
    with pytest.raises(ValueError, match="no unstabilised cell"):
        choose_scales([{"preset": "dps", "scale": 0.1, "stabiliser": "adam", "fid": 1.0},
                       {"preset": "dps", "scale": 0.2, "stabiliser": "adam", "fid": 2.0}])


def test_bad_cells_argument_is_named():
    with pytest.raises(ValueError, match="--cells takes preset=stabiliser=scale=metrics.json, got 'dps=none'"):
        parse_cells(["dps=none"])


@pytest.mark.e2e
def test_methods_target_builds_every_preset_with_its_compute(run, tmp_path):
    # in a copy of the tiny run (its models reused): the shared run's logs stay one per job of its own plan,
    # which the SLURM test counts
    work = tmp_path / "methods_run"
    shutil.copytree(run, work, symlinks=True)
    run = work
    snakemake(run, "--cores", "2", "results/methods.csv", "--resources", "gpu=1", configfile=[TINY, TINY_METHODS])
    table = pd.read_csv(run / "results/methods.csv")
    presets = ["robust-baseline", "x0_hat", "x0_hat_8", "mpgd", "dps", "freedom", "backward"]
    assert list(dict.fromkeys(table.preset)) == presets
    assert len(table) == 1 + 2 * (len(presets) - 1)  # the baseline, then every preset with none and adam
    for metric in ("judge_accuracy", "accuracy", "fooled", "fid", "cosine_mean", "informativeness"):
        assert (table[f"{metric}_low"] <= table[metric] + 1e-9).all() and table[metric].notna().all(), metric
    rows = {(r.preset, r.stabiliser): r for r in table.itertuples()}
    assert (rows["freedom", "none"].unet_forward, rows["freedom", "none"].unet_backward) == (8, 8)
    assert (rows["x0_hat_8", "none"].unet_forward, rows["x0_hat_8", "none"].unet_backward) == (8, 8)  # matched
    assert (rows["mpgd", "none"].unet_forward, rows["mpgd", "none"].unet_backward) == (4, 0)
    assert rows["backward", "adam"].classifier_forward == 8
    assert rows["robust-baseline", "none"].classifier == "robust"
    assert rows["dps", "none"].scale in (0.05, 0.2) and rows["dps", "none"].scale_rule.startswith("lowest FID")
    assert table[table.preset != "dps"].scale_rule.eq("grid.scale").all()
    with Image.open(run / "results/figures/methods.png") as image:
        assert image.size[0] > 400
    assert (run / "results/logs/methods.log").is_file()


@pytest.mark.parametrize("preset, key", [
    ({"method": "langevin"}, "method"),
    ({"method": "freedom", "recurrence": -1}, "recurrence"),
    ({"method": "dps", "scales": ["big"]}, "scales"),
    ({"method": "backward", "inner_steps": 1.5}, "inner_steps"),
])
def test_bad_preset_stops_before_any_job_naming_the_key(tmp_path, preset, key):
    cfg = yaml.safe_load(TINY_METHODS.read_text())
    cfg["methods"]["presets"]["bad"] = preset
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "results/methods.csv", configfile=[TINY, path], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and key in out and "validat" in out.lower(), out[-2000:]
    assert "rule " not in proc.stdout


@pytest.mark.parametrize("change, message", [
    ({"presets": {"dps": {"method": "dps"}}}, "methods.presets.dps: its step ('dps') is in other units"),
    ({"presets": {"mpgd": {"method": "mpgd", "x0": False}}}, "methods.presets.mpgd.x0 is false"),
    ({"presets": {"x_t": {"method": "paper", "x0": False, "inner_steps": 3}}},
     "methods.presets.x_t: inner_steps above 1 optimise x0-hat"),
    ({"presets": {"long": {"method": "paper", "steps": 999}}}, "methods.presets.long.steps (999) exceeds ddpm.timesteps"),
])
def test_inconsistent_methods_config_is_refused_naming_the_key(tmp_path, change, message):
    cfg = yaml.safe_load(TINY_METHODS.read_text())
    cfg["methods"] |= change
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "results/methods.csv", configfile=[TINY, path], check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
