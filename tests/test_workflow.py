"""End to end: the real Snakemake workflow on configs/tiny.yaml, then dry runs for staleness."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"

pytestmark = pytest.mark.e2e


def snakemake(workdir, *args, configfile=TINY, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def planned_rules(proc) -> set[str]:
    """Names of the rules a dry run would execute."""
    return set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M))


def variant_config(tmp_path, name, **changes):
    cfg = yaml.safe_load(TINY.read_text())
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        cfg[section][key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_run")
    snakemake(workdir, "--cores", "2", "--resources", "gpu=1")
    return workdir


def test_table1_has_every_cell_with_sane_values(run):
    table = pd.read_csv(run / "results/table1.csv")
    assert {"classifier", "x0", "adam", "scale", "fid", "accuracy", "n"} <= set(table.columns)
    assert len(table) == 8
    cells = set(zip(table.classifier, table.x0, table.adam))
    assert cells == {(c, x, a) for c in ("robust", "nonrobust") for x in (True, False) for a in (True, False)}
    assert (table.scale == 5).all() and (table.n == 8).all()
    assert table.accuracy.between(0, 1).all() and (table.fid >= -1e-6).all() and table.fid.notna().all()
    assert table.fid_features.str.startswith("sportballs").all()
    md = (run / "results/table1.md").read_text()
    assert md.count("\n| ") == 9 and "FID of 8 target-class" in md
    assert "\\begin{tabular}" in (run / "results/table1.tex").read_text()


def test_every_figure_is_a_valid_image(run):
    figures = sorted((run / "results/figures").rglob("*.png"))
    names = {p.name for p in figures}
    assert {"cosine_robust.png", "cosine_nonrobust.png", "cosine_baseline.png", "scale_ablation.png",
            "classifiers.png", "sportballs.png", "samples_robust.png"} <= names
    assert len(list((run / "results/figures/grids").glob("*.png"))) == 9  # 8 grid cells + the s=0 ablation cell
    for path in figures:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.width >= 32 and img.height >= 32


def test_every_rule_logged(run):
    logs = list((run / "results/logs").rglob("*.log"))
    assert len(logs) >= 30
    assert "wrote 160 training" in (run / "results/logs/make_data.log").read_text()


def test_nothing_is_stale_after_a_run(run):
    assert planned_rules(snakemake(run, "-n")) == set()


def test_changing_the_scale_reruns_only_sampling_and_aggregates(run, tmp_path):
    cfg = variant_config(tmp_path, "scale7", **{"grid.scale": 7})
    rules = planned_rules(snakemake(run, "-n", configfile=cfg))
    assert {"sample_cell", "evaluate_cell", "table1"} <= rules
    assert not rules & {"make_data", "train_ddpm", "train_classifier", "scale_ablation"}


def test_changing_the_data_seed_reruns_everything_downstream(run, tmp_path):
    cfg = variant_config(tmp_path, "seed1", **{"data.seed": 1})
    rules = planned_rules(snakemake(run, "-n", configfile=cfg))
    assert {"make_data", "train_ddpm", "train_classifier", "sample_cell", "evaluate_cell", "table1",
            "scale_ablation", "classifier_summary"} <= rules


def test_naming_one_figure_builds_only_what_it_needs(tmp_path):
    proc = snakemake(tmp_path, "-n", "results/figures/cosine_nonrobust.png")
    assert planned_rules(proc) == {"make_data", "train_ddpm", "train_classifier", "sample_cell", "cosine_figure"}
    assert "results/models/robust.pt" not in proc.stdout and "results/models/judge.pt" not in proc.stdout


@pytest.mark.parametrize("change, key", [
    ({"ddpm.stepz": 5}, "stepz"),
    ({"ddpm.steps": "many"}, "steps"),
    ({"sampling.steps": 0}, "steps"),
    ({"sampling.target": "golfball"}, "target"),
])
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, change, key):
    cfg = variant_config(tmp_path, "bad", **change)
    proc = snakemake(tmp_path, "-n", configfile=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert key in out and "validat" in out.lower()
    assert planned_rules(proc) == set()
