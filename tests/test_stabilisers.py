"""Stabiliser parameters, the trace's staleness and spread, and the stabiliser study (gradcheck.stabilisers).

ADAM at any betas is checked against torch.optim.Adam, the paired changes against the differences
worked by hand, the correlation against SciPy, and the paper's four cells against the samples the
code before staleness and spread existed drew (tests/data/paper_cells_float32.npz, commit 01e60b3,
on AVX2 kernels).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from diffusers import DDPMScheduler
from PIL import Image
from scipy.stats import spearmanr

from conftest import REPO, TINY, snakemake, tiny_unet
from gradcheck.guidance import (AdamMoments, GradientEMA, GuidanceSettings, direction_spread, guided_sample,
                                initial_noise, make_stabiliser, sample_generators)
from gradcheck.plan import study_stabilisers
from gradcheck.settings import STABILISER_PRESETS, adam_name, parse_stabiliser
from gradcheck.stabilisers import build_table, guide_pick, stability_correlation
from test_methods import SmallConvNet

TINY_STUDY = REPO / "configs" / "tiny_stabilisers.yaml"
PAPER_CELLS = Path(__file__).parent / "data" / "paper_cells_float32.npz"


# --- stabiliser names and their maths ------------------------------------------------------------

@pytest.mark.parametrize("betas, eps", [((0.0, 0.8), 1e-8), ((0.9, 0.99), 1e-4), ((0.5, 0.0), 1e-8), ((0.0, 0.817), 1e-8)])
def test_adam_at_any_betas_equals_torch_optim_adam_with_lr_one(betas, eps):
    gen = torch.Generator().manual_seed(1)
    # float64: the step is read back as a difference of parameters, which float32 would round
    grads = [torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64) * (k + 1) for k in range(20)]
    param = torch.zeros(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    optim = torch.optim.Adam([param], lr=1.0, betas=betas, eps=eps)
    ours = make_stabiliser(GuidanceSettings(stabiliser=adam_name(*betas), adam_eps=eps))
    assert isinstance(ours, AdamMoments) and (ours.beta1, ours.beta2) == betas
    for g in grads:
        before = param.detach().clone()
        param.grad = g.clone()
        optim.step()
        torch.testing.assert_close(ours(g), before - param.detach(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("beta", [0.9, 0.99])
def test_ema_without_bias_correction_is_the_recurrence_written_out(beta):
    gen = torch.Generator().manual_seed(2)
    ema = make_stabiliser(GuidanceSettings(stabiliser=f"ema{beta}", bias_correction=False))
    assert isinstance(ema, GradientEMA)
    m = torch.zeros(2, 5)
    for _ in range(15):
        g = torch.randn(2, 5, generator=gen)
        m = beta * m + (1 - beta) * g
        torch.testing.assert_close(ema(g), m)


def test_stabiliser_names_say_their_betas_once():
    assert parse_stabiliser("adam") == ("adam", (0.9, 0.999))
    assert parse_stabiliser("adam0_0.8") == ("adam", (0.0, 0.8))
    assert parse_stabiliser("ema0.99") == ("ema", (0.99,))
    assert adam_name(0.9, 0.999) == "adam" and adam_name(0, 0.817) == "adam0_0.817"
    with pytest.raises(ValueError, match="'adam0.0_0.8' is written 'adam0_0.8'"):
        parse_stabiliser("adam0.0_0.8")
    with pytest.raises(ValueError, match="'adam0.9_0.999' is written 'adam'"):
        parse_stabiliser("adam0.9_0.999")
    for bad in ("adam1_0.9", "adam0.9", "adam0.9_1.5", "ema0"):
        with pytest.raises(ValueError, match="unknown stabiliser"):
            parse_stabiliser(bad)
    assert GuidanceSettings(stabiliser="adam0_0.8").adam


def test_every_preset_names_a_valid_stabiliser_and_the_schema_lists_them():
    for name in STABILISER_PRESETS.values():
        parse_stabiliser(name)
    schema = yaml.safe_load((REPO / "configs/schema.yaml").read_text())
    assert schema["properties"]["stabiliser_study"]["properties"]["presets"]["items"]["enum"] == list(STABILISER_PRESETS)


def test_study_stabilisers_are_none_the_grid_then_presets_each_once():
    spec = {"adam_beta1": [0, 0.9], "adam_beta2": [0.99, 0.999], "presets": ["paper", "nrcg-ema0.9"]}
    assert study_stabilisers(spec) == ["none", "adam0_0.99", "adam0_0.999", "adam0.9_0.99", "adam", "ema0.9"]
    with pytest.raises(ValueError, match="stabiliser_study.presets: unknown preset 'adamw'"):
        study_stabilisers({**spec, "presets": ["adamw"]})


# --- staleness and spread ------------------------------------------------------------------------

def test_spread_is_one_for_a_sign_vector_and_one_over_root_n_for_one_pixel():
    n = 3 * 8 * 8
    sign = torch.where(torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) > 0, 1.0, -1.0)
    one_hot = torch.zeros(1, 3, 8, 8)
    one_hot[0, 1, 2, 3] = -5.0
    torch.testing.assert_close(direction_spread(sign * 1e-30), torch.tensor([1.0]))  # at any scale
    torch.testing.assert_close(direction_spread(one_hot), torch.tensor([n ** -0.5]))
    assert torch.isnan(direction_spread(torch.zeros(1, 3, 8, 8))).all()


def _sample(settings, steps=5):
    gens = sample_generators([0, 1, 2])
    scheduler = DDPMScheduler(num_train_timesteps=100, beta_schedule="linear")
    return guided_sample(tiny_unet(), scheduler, SmallConvNet(), initial_noise(gens, (3, 8, 8), "cpu"), settings,
                         gens, steps, progress=False)


@pytest.mark.parametrize("settings", [dict(x0_hat=False), dict(x0_hat=True), dict(method="mpgd", x0_hat=True)])
def test_staleness_is_one_without_a_stabiliser_and_below_with_adam(settings):
    _, plain = _sample(GuidanceSettings(scale=4.0, target=1, **settings))
    torch.testing.assert_close(plain.staleness, torch.ones_like(plain.staleness))
    _, adam = _sample(GuidanceSettings(scale=4.0, target=1, stabiliser="adam", **settings))
    _, no_momentum = _sample(GuidanceSettings(scale=4.0, target=1, stabiliser="adam0_0.999", **settings))
    # ADAM's first bias-corrected step is sign(g) whatever beta1: already below 1, and the same for both
    assert (adam.staleness < 0.999).all()
    torch.testing.assert_close(adam.staleness[0], no_momentum.staleness[0])
    if not settings["x0_hat"]:  # on x_t no pixel's gradient is 0 (clipped x0-hat pixels' are): sign(g) moves all alike
        torch.testing.assert_close(adam.spread[0], torch.ones(3))
    assert ((plain.spread > 0) & (plain.spread < 1)).all()


def _paper_cells():
    """name -> (samples, cosine) of the paper's four cells, float32, one thread (as recorded)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float32 reductions can depend on the thread count
    try:
        cells = {}
        for x0 in (False, True):
            for stabiliser in ("none", "adam"):
                x, trace = _sample(GuidanceSettings(scale=4.0, target=1, x0_hat=x0, stabiliser=stabiliser))
                cells[f"x0-{str(x0).lower()}_{stabiliser}"] = (x.numpy(), trace.cosine.numpy())
        return cells
    finally:
        torch.set_num_threads(threads)


# float32 kernels round by the CPU they dispatch to (vector width, oneDNN's ISA, MKL's code path), so the
# recording and the check run on one kernel set every x86-64 CPU of the last decade has: AVX2. Commit
# 01e60b3's sampler, run so on a 2-core AMD EPYC with AVX-512, reproduced this recording bit for bit.
AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def test_the_papers_four_cells_stay_bit_for_bit_in_float32(tmp_path):
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip(f"the recording is of AVX2 kernels; this CPU has {torch.backends.cpu.get_cpu_capability()}")
    recorded = np.load(PAPER_CELLS)
    if str(recorded["torch_version"]) != torch.__version__:
        pytest.skip(f"recorded with torch {recorded['torch_version']}, here {torch.__version__}")
    # this file's recorder, which pins the kernels (they act only before torch loads) in a fresh interpreter
    proc = subprocess.run([sys.executable, __file__, str(tmp_path / "cells.npz")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    here = np.load(tmp_path / "cells.npz")
    assert str(here["cpu_capability"]) == "AVX2"  # the pins took
    for name in recorded.files:
        if name not in ("torch_version", "cpu_capability"):
            assert np.array_equal(here[name], recorded[name], equal_nan=True), name


# --- the study's table ---------------------------------------------------------------------------

def _cell(tmp_path, classifier, x0, stabiliser, judge, guide, cosine):
    row = {"classifier": classifier, "x0": x0, "stabiliser": stabiliser, "scale": 0.5, "replicates": 1,
           **{f"{m}{s}": v for m, v in (("judge_accuracy", np.mean(judge)), ("accuracy", np.mean(guide)),
                                        ("fooled", 0.0), ("cosine_mean", cosine), ("staleness", 1.0), ("spread", 0.5))
              for s in ("", "_low", "_high")},
           "per_sample": {"seed_index": [0] * len(judge), "replicate": [0] * len(judge), "judge": judge}}
    path = tmp_path / f"{classifier}_{x0}_{stabiliser}.json"
    path.write_text(json.dumps(row))
    return path


def test_each_cell_is_paired_with_its_own_looks_unstabilised_cell(tmp_path):
    paths = [_cell(tmp_path, "nonrobust", True, "none", [1, 1, 0, 0, 1, 0], [1] * 6, 0.2),
             _cell(tmp_path, "nonrobust", True, "adam", [1, 0, 0, 0, 1, 0], [1] * 6, 0.9),
             _cell(tmp_path, "nonrobust", True, "adam0_0.8", [1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 0], 0.5),
             _cell(tmp_path, "nonrobust", False, "none", [0, 0, 0, 0, 0, 0], [0] * 6, 0.1),
             _cell(tmp_path, "nonrobust", False, "ema0.9", [1, 1, 0, 0, 0, 0], [1] * 6, 0.8)]
    frame = build_table(paths, n_boot=200).set_index(["x0", "stabiliser"])
    assert frame.loc[(True, "adam"), "judge_vs_none"] == pytest.approx(-1 / 6)  # by hand: one sample lost
    assert frame.loc[(True, "adam0_0.8"), "judge_vs_none"] == pytest.approx(2 / 6)
    assert frame.loc[(False, "ema0.9"), "judge_vs_none"] == pytest.approx(2 / 6)
    assert frame.loc[(True, "none"), "judge_vs_none"] == 0
    assert frame.loc[(True, "adam"), "preset"] == "paper" and frame.loc[(True, "adam0_0.8"), "beta2"] == 0.8
    assert guide_pick(frame.reset_index().query("x0")).stabiliser == "adam"  # guide accuracy 1.0; then stability
    with pytest.raises(ValueError, match="no unstabilised cell for the nonrobust guide with x0=True"):
        build_table(paths[1:3], n_boot=200)


def test_stability_correlation_is_spearmans_rho_over_cells():
    frame = pd.DataFrame({"cosine_mean": [0.1, 0.5, 0.9, 0.3, 0.7], "judge_accuracy": [0.9, 0.4, 0.2, 0.5, 0.3]})
    rho, low, high, n = stability_correlation(frame, n_boot=300)
    assert n == 5 and rho == pytest.approx(spearmanr(frame.cosine_mean, frame.judge_accuracy).statistic)
    assert low <= rho <= high


def test_a_constant_judge_has_no_correlation_and_no_interval():
    frame = pd.DataFrame({"cosine_mean": [0.1, 0.5, 0.9, 0.3], "judge_accuracy": [0.0] * 4})
    rho, low, high, n = stability_correlation(frame, n_boot=50)
    assert n == 4 and np.isnan(rho) and np.isnan(low) and np.isnan(high)


# --- the workflow ----------------------------------------------------------------------------------

@pytest.mark.parametrize("change, key", [({"adam_beta1": [1.0]}, "adam_beta1"),
                                         ({"presets": ["adamw"]}, "presets")])
def test_bad_study_stops_before_any_job_naming_the_key(tmp_path, change, key):
    cfg = yaml.safe_load(TINY_STUDY.read_text())
    cfg["stabiliser_study"] |= change
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "results/stabilisers.csv", configfile=[TINY, path], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"stabiliser_study.{key}" in out, out[-2000:]
    assert "rule " not in proc.stdout


@pytest.mark.e2e
def test_stabilisers_target_pairs_every_cell_and_draws_the_figures(run, tmp_path):
    work = tmp_path / "stabilisers_run"  # a copy: the shared run keeps one log per job of its own plan
    shutil.copytree(run, work, symlinks=True)
    targets = ["results/stabilisers.csv", "results/figures/stabilisers_staleness.png",
               "results/figures/stabilisers_spread.png"]
    snakemake(work, "--cores", "2", *targets, configfile=[TINY, TINY_STUDY])
    table = pd.read_csv(work / "results/stabilisers.csv")
    assert list(table.stabiliser) == ["none", "adam", "adam0_0.999", "ema0.9"] * 2  # the paper's ADAM first
    assert (table[table.stabiliser == "none"].judge_vs_none == 0).all()
    assert table.staleness[table.stabiliser == "none"].round(4).eq(1).all()
    assert (table.staleness[table.stabiliser != "none"] < 1).all()
    answers = (work / "results/stabilisers.md").read_text()
    assert "## The nonrobust guide on x0-hat" in answers and "Spearman's rho" in answers
    for name in ("stabilisers.png", "stabilisers_staleness.png", "stabilisers_spread.png"):
        with Image.open(work / "results/figures" / name) as image:
            assert image.size[0] > 400


if __name__ == "__main__":  # record the paper's four cells on AVX2 kernels: python tests/test_stabilisers.py [OUT]
    if any(os.environ.get(k) != v for k, v in AVX2_KERNELS.items()):
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], {**os.environ, **AVX2_KERNELS})
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else PAPER_CELLS
    arrays = {k: v for name, (x, cosine) in _paper_cells().items() for k, v in ((name, x), (f"{name}_cosine", cosine))}
    np.savez(out, torch_version=torch.__version__, cpu_capability=torch.backends.cpu.get_cpu_capability(), **arrays)
    print(f"wrote {out}")
