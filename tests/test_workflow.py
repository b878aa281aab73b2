"""End to end: the real Snakemake workflow on configs/tiny.yaml, then dry runs for staleness."""

import json
import re
import subprocess

import numpy as np

import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO, TINY, snakemake

pytestmark = pytest.mark.e2e


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


def test_table1_has_every_cell_with_sane_values(run):
    table = pd.read_csv(run / "results/table1.csv")
    assert len(table) == 12
    cells = set(zip(table.classifier, table.x0, table.stabiliser))
    assert cells == {(c, x, st) for c in ("robust", "nonrobust") for x in (True, False)
                     for st in ("none", "adam", "ema0.9")}
    assert (table.adam == (table.stabiliser == "adam")).all()
    assert (table.scale == 5).all() and (table.n == 8).all() and (table.seeds == 2).all()
    for metric in ("accuracy", "judge_accuracy", "fooled", "fid", "kid", "cosine_mean"):
        assert table[metric].notna().all(), metric
        assert (table[f"{metric}_low"] <= table[metric] + 1e-12).all(), metric
        assert (table[metric] <= table[f"{metric}_high"] + 1e-12).all(), metric
    assert table.accuracy.between(0, 1).all() and (table.fid >= -1e-6).all()
    assert table.features.str.startswith("features-resnet-pool-512").all()  # never the judge's features
    assert (table.replicates == 1).all() and table.cosine_late.notna().all()
    md = (run / "results/table1.md").read_text()
    assert sum(line.startswith("|") for line in md.splitlines()) == 14  # header, rule, 12 cells
    assert "1 training replicate(s) x 2 sampling seed(s) x 8 samples" in md and "[95% hierarchical bootstrap interval" in md
    assert "\\begin{tabular}" in (run / "results/table1.tex").read_text()


def test_findings_give_a_verdict_for_every_claim_from_the_table(run):
    text = (run / "results/findings.md").read_text()
    verdicts = re.findall(r"^\| (.+?) \| \*\*(.+?)\*\* \| (\d+) of 1 \| (.+?) \|$", text, flags=re.M)
    assert len(verdicts) == 7
    assert {v for _, v, _, _ in verdicts} <= {"holds", "does not hold", "inconclusive"}
    # the tiny classifiers are far below 90% clean accuracy: every verdict is marked, the run still writes it
    assert all(mark.startswith("unfit: ") and "judge" in mark for *_, mark in verdicts)
    assert "| judge |" in text and "**Warning**" in text
    assert "WARNING" in (run / "results/logs/findings.log").read_text()
    table = pd.read_csv(run / "results/table1.csv")
    robust = table[(table.classifier == "robust") & ~table.x0 & (table.stabiliser == "none")].iloc[0]
    shown = f"{robust.judge_accuracy * 100:.1f} [{robust.judge_accuracy_low * 100:.1f}, " \
            f"{robust.judge_accuracy_high * 100:.1f}]"
    assert shown in text  # the numbers beside the verdicts are the table's


def test_every_figure_is_a_valid_image(run):
    figures = sorted((run / "results/figures").rglob("*.png"))
    names = {p.name for p in figures}
    assert {"cosine_robust.png", "cosine_nonrobust.png", "cosine_baseline.png", "scale_ablation.png",
            "classifiers.png", "sportballs.png", "samples_robust.png", "trace_grad_norm.png",
            "trace_eps_cosine.png", "trace_judge_confidence.png", "sensitivity.png", "replicates.png",
            "headline_vs_ddpm.png", "ddpm_quality.png"} <= names
    assert len(list((run / "results/figures/grids").glob("*.png"))) == 13  # 12 grid cells + the s=0 ablation cell
    for path in figures:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.width >= 32 and img.height >= 32


def test_report_holds_every_table_and_figure_with_captions(run, tmp_path):
    report = tmp_path / "report.html"
    snakemake(run, "--report", str(report))
    html = report.read_text(errors="replace")
    for category in ("Table 1 and claims", "Gradient diagnostics", "Samples", "Scale ablation",
                     "Classifiers and data", "Sensitivity"):
        assert category in html, category
    for name in ("table1.csv", "findings.md", "trace_judge_confidence.png", "cosine_baseline.png",
                 "scale_ablation.png", "classifiers.png", "sensitivity.csv", "sensitivity.png"):
        assert name in html, name
    assert "central 90%" in html and "bootstrap interval" in html


def test_every_rule_logged(run):
    logs = list((run / "results/logs").rglob("*.log"))
    assert len(logs) >= 30
    assert "wrote 160 training" in (run / "results/logs/make_data.log").read_text()


def test_nothing_is_stale_after_a_run(run):
    assert planned_rules(snakemake(run, "-n")) == set()


def test_changing_the_scale_reruns_only_sampling_and_aggregates(run, tmp_path):
    cfg = variant_config(tmp_path, "scale7", **{"grid.scale": 7})
    proc = snakemake(run, "-n", configfile=cfg)
    rules = planned_rules(proc)
    assert {"sample_cell", "evaluate_cell", "table1"} <= rules
    assert not rules & {"make_data", "train_ddpm", "train_classifier", "scale_ablation"}, proc.stdout[-4000:]


def test_sensitivity_study_samples_every_variant_and_reuses_what_a_change_cannot_affect(run):
    table = pd.read_csv(run / "results/sensitivity.csv")
    assert list(dict.fromkeys(table.variant)) == ["default", "clip_x0", "T25", "authors"]
    assert set(table.role) == {"default", "factor", "combined", "sweep"}
    assert set(table[table.role == "sweep"].scale) == {1}
    for column in ("judge_accuracy", "accuracy", "fooled", "fid", "judge_accuracy_change"):
        assert (table[f"{column}_low"] <= table[column] + 1e-12).all() and table[column].notna().all(), column
    rows = {(r.variant, r.classifier): r for r in table.itertuples()}
    # clipping x0-hat cannot change the robust x_t cell: its samples are the default's, its change exactly 0
    assert rows["clip_x0", "robust"].samples == rows["default", "robust"].samples
    assert rows["clip_x0", "robust"].judge_accuracy_change == 0
    assert rows["clip_x0", "nonrobust"].samples != rows["default", "nonrobust"].samples
    # T = 25 trains its own DDPM and robust classifier, and samples all 25 steps
    with np.load(run / rows["T25", "robust"].samples) as cell:
        record = json.loads(str(cell["record"]))
        assert len(cell["timesteps"]) == 25
    assert record["ddpm"] == "results/models/ddpm_T25" and record["classifier"] == "results/models/robust_T25.pt"
    scheduler = json.loads((run / "results/models/ddpm_T25/scheduler/scheduler_config.json").read_text())
    assert scheduler["num_train_timesteps"] == 25
    assert scheduler["beta_end"] == pytest.approx(0.02 * 1000 / 25)  # ddpm.scale_betas reaches the variant
    findings = (run / "results/findings.md").read_text()
    assert "## Sensitivity: why the paper's headline cell differs" in findings
    assert "| clip_x0 | clip_x0=true |" in findings and "| authors | clip_x0=true, timesteps=25, steps=all |" in findings


def test_changing_a_guidance_setting_reruns_only_the_cells_it_can_affect(run, tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["guidance"]["clip_x0"] = True
    path = tmp_path / "clip.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(run, "-n", configfile=path)
    jobs = re.findall(r"^rule (sample_cell|sample_study_cell):\n(.*?)(?=^\S|\Z)", proc.stdout, flags=re.S | re.M)
    assert len([j for j in jobs if j[0] == "sample_cell"]) == 6  # the x0-hat cells of the grid, no others
    assert all("x0=true" in body for _, body in jobs), proc.stdout[-3000:]
    assert not planned_rules(proc) & {"make_data", "train_ddpm", "train_classifier", "scale_ablation"}


def test_changing_the_data_seed_reruns_everything_downstream(run, tmp_path):
    cfg = variant_config(tmp_path, "seed1", **{"data.seed": 1})
    rules = planned_rules(snakemake(run, "-n", configfile=cfg))
    assert {"make_data", "train_ddpm", "train_classifier", "sample_cell", "evaluate_cell", "table1",
            "scale_ablation", "classifier_summary"} <= rules


def test_naming_one_figure_builds_only_what_it_needs(tmp_path):
    proc = snakemake(tmp_path, "-n", "results/figures/cosine_nonrobust.png")
    assert planned_rules(proc) == {"make_data", "train_ddpm", "train_classifier", "sample_cell", "cosine_figure"}
    # the non-robust cells need the judge, and the robust classifier as their informativeness reference
    assert "results/models/judge.pt" in proc.stdout and "--reference results/models/robust.pt" in proc.stdout
    assert "results/models/features.pt" not in proc.stdout  # FID is not asked for


@pytest.mark.parametrize("change, key", [
    ({"ddpm.stepz": 5}, "stepz"),
    ({"ddpm.steps": "many"}, "steps"),
    ({"sampling.steps": 0}, "steps"),
    ({"guidance.objective": "softmax"}, "objective"),
    ({"sensitivity.variants": {"fast": {"guidance": {"clip": True}}}}, "clip"),
])
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, change, key):
    cfg = variant_config(tmp_path, "bad", **change)
    proc = snakemake(tmp_path, "-n", configfile=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert key in out and "validat" in out.lower()
    assert planned_rules(proc) == set()


@pytest.mark.parametrize("change, message", [
    ({"sensitivity.sweep": {"variant": "nope", "scales": [1]}},
     "sensitivity.sweep.variant 'nope' is not a variant; choose one of default, "),
    ({"ddpm.block_out_channels": [16, 32], "ddpm.norm_num_groups": 32},
     "ddpm.block_out_channels [16, 32] has levels of [16] channels"),
    ({"ddpm.timesteps": 20}, "ddpm.scale_betas needs ddpm.timesteps above 20"),
    ({"sampling.target": "volleyball"}, "sampling.target 'volleyball' is not among data.classes"),
    ({"sampling.target": "golfball"}, "sampling.target 'golfball' is not among data.classes (basketball, soccer"),
    ({"ddpm.block_out_channels": [32] * 6, "ddpm.attention": [False] * 6},
     "but data.image_size (16) is not divisible by 32"),
])
def test_inconsistent_config_stops_before_any_job_naming_the_keys(tmp_path, change, message):
    cfg = variant_config(tmp_path, "bad", **change)
    proc = snakemake(tmp_path, "-n", configfile=cfg, check=False)
    assert proc.returncode != 0 and planned_rules(proc) == set()
    assert message in proc.stdout + proc.stderr


def test_run_record_traces_the_table_to_its_run(run):
    import json

    from snakemake.utils import validate

    record = json.loads((run / "results/run_record.json").read_text())
    effective = yaml.safe_load(TINY.read_text())
    assert "confidence" not in effective["metrics"]  # so a schema default is checked too
    validate(effective, str(REPO / "configs/schema.yaml"))  # fills in the schema's defaults, as the run did
    assert record["config"] == effective
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["git"]["commit"] == head
    assert record["packages"]["torch"] == "2.14.1" and record["packages"]["diffusers"] == "0.42.1"
    assert len(record["jobs"]) == 5 + 13  # DDPM, four classifiers, 13 sampling cells
    assert record["replicates"] == [{"replicate": 0, "ddpm_seed": 0, "robust_seed": 1, "nonrobust_seed": 2,
                                     "sampling_seeds": [0, 1]}]
    assert set(record["models"]) == {"ddpm", "robust", "nonrobust", "judge", "features"}
    assert {job["device"] for job in record["jobs"].values()} == {"cpu"}


def test_slurm_profile_requests_gpus_for_gpu_rules_only(tmp_path):
    proc = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles/slurm"), "--workflow-profile", "none")
    resources = {}
    output = proc.stdout + proc.stderr
    for name, body in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", output, flags=re.S | re.M):
        line = re.search(r"resources: (.*)", body)
        resources.setdefault(name, set()).add(line.group(1) if line else "")
    gpu_rules = {"train_ddpm", "train_classifier", "sample_cell", "sample_study_cell", "ddpm_quality"}
    assert gpu_rules <= set(resources) and len(resources) > len(gpu_rules)
    for name, lines in resources.items():
        for line in lines:
            assert bool(re.search(r"\bgpu=1\b", line)) == (name in gpu_rules), f"{name}: {line}"
            if name in gpu_rules:
                assert "cpus_per_gpu=4" in line and "cpus_per_task=0" in line


def test_every_aggregate_takes_the_configs_bootstrap_settings(tmp_path):
    """metrics.n_boot and metrics.confidence reach every command that takes them: one left on its CLI
    default would ignore the config (the methods table once did)."""
    from gradcheck.cli import build_parser

    overlay = tmp_path / "boot.yaml"
    overlay.write_text("metrics: {n_boot: 123, confidence: 0.8}\n")
    proc = snakemake(tmp_path, "-n", "-p", "all", "results/methods.csv",
                     configfile=[TINY, REPO / "configs/tiny_methods.yaml", overlay])
    commands = {name: {a.option_strings[0] for a in parser._actions if a.option_strings}
                for name, parser in build_parser()._subparsers._group_actions[0].choices.items()}
    checked = set()
    for name, args in re.findall(r"python -m gradcheck (\S+) (.*?) 2> ", proc.stdout):
        if "--n-boot" in commands[name]:
            assert "--n-boot 123" in args, f"{name}: {args}"
            checked.add(name)
        if "--confidence" in commands[name]:
            assert "--confidence 0.8" in args, f"{name}: {args}"
    assert {"evaluate", "findings", "sensitivity", "methods-table"} <= checked


def test_command_line_config_is_typed_and_a_typo_is_named_in_a_few_lines(tmp_path):
    proc = snakemake(tmp_path, "-n", "--config", "grid={scale: 3}")
    assert "results/metrics/robust/x0-false_none_s-3.json" in proc.stdout
    typo = snakemake(tmp_path, "-n", "--config", "ddpm={stepz: 3}", check=False)
    assert typo.returncode != 0 and "unknown key 'ddpm.stepz': did you mean 'steps'?" in typo.stdout + typo.stderr
    assert len((typo.stdout + typo.stderr).splitlines()) < 20


def test_resources_gpu_0_means_the_cpu_and_jobs_ask_for_no_gpu_without_one(tmp_path):
    """--resources gpu=0 runs every job on the CPU, even with device: auto on a machine with a card; on a
    machine without one (as here) no job holds a gpu token, so jobs run side by side as --cores allows."""
    auto = tmp_path / "auto.yaml"
    auto.write_text("device: auto\n")
    cpu = snakemake(tmp_path, "-n", "-p", "--resources", "gpu=0", configfile=[TINY, auto])
    assert "--device auto" not in cpu.stdout and cpu.stdout.count("--device cpu") > 10
    plain = snakemake(tmp_path, "-n", "-p", "--cores", "2", configfile=[TINY, auto])
    assert plain.stdout.count("--device auto") > 10
    assert "gpu=1" not in plain.stdout  # no card here: no token to queue behind


def test_data_parallel_ddpm_asks_for_a_thread_per_process(tmp_path):
    two = tmp_path / "two.yaml"
    two.write_text("ddpm: {processes: 2}\n")
    plan = snakemake(tmp_path, "-n", "-p", "--cores", "2", "results/models/ddpm", configfile=[TINY, two]).stdout
    assert "--processes 2" in plan and "--threads 2" in plan
    plain = snakemake(tmp_path, "-n", "-p", "--cores", "2", "results/models/ddpm").stdout
    assert "--processes" not in plain and "--threads 1" in plain  # the default: the command of runs before it
