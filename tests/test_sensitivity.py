"""The sensitivity table: paired changes against the default, verdicts, the findings section, the figure."""

import json

import numpy as np
import pytest
from PIL import Image

from gradcheck import sensitivity
from gradcheck.cli import main
from gradcheck.table import METRICS

SEEDS = [0] * 8 + [1] * 8


def _metrics(path, classifier, x0, stabiliser, guide, judge, scale=0.25):
    """A per-cell metrics file as `gradcheck evaluate` writes it, from per-sample outcomes."""
    row = {"classifier": classifier, "x0": x0, "stabiliser": stabiliser, "adam": stabiliser == "adam",
           "scale": scale, "target": "baseball", "seeds": 2, "samples_per_seed": 8, "n": 8,
           "features": "test", "confidence": 0.95, "samples": str(path).replace(".json", ".npz"),
           "per_sample": {"seed_index": SEEDS, "guide": list(guide), "judge": list(judge)}}
    for metric in METRICS:
        row |= {metric: 0.5, f"{metric}_low": 0.4, f"{metric}_high": 0.6}
    for metric, outcome in (("accuracy", guide), ("judge_accuracy", judge)):
        mean = float(np.mean(outcome))
        row |= {metric: mean, f"{metric}_low": max(0.0, mean - 0.05), f"{metric}_high": min(1.0, mean + 0.05)}
    path.write_text(json.dumps(row))
    return str(path)


@pytest.fixture
def study(tmp_path):
    ones, zeros = [1] * 16, [0] * 16
    some = [1, 0] * 8  # judge: the clipping variant turns every other sample into a baseball
    entries = [
        ("default", _metrics(tmp_path / "d_head.json", "nonrobust", True, "adam", zeros, zeros)),
        ("default", _metrics(tmp_path / "d_rob.json", "robust", False, "none", ones, ones)),
        ("clip", _metrics(tmp_path / "c_head.json", "nonrobust", True, "adam", ones, some)),
        ("clip", str(tmp_path / "d_rob.json")),  # clipping cannot change an x_t cell: the default's file
        ("all", _metrics(tmp_path / "a_head.json", "nonrobust", True, "adam", ones, ones)),
        ("all", _metrics(tmp_path / "a_rob.json", "robust", False, "none", ones, ones)),
        ("all", _metrics(tmp_path / "a_head2.json", "nonrobust", True, "adam", ones, zeros, scale=2.0)),
    ]
    changes = {"default": {}, "clip": {"guidance": {"clip_x0": True}},
               "all": {"guidance": {"clip_x0": True}, "sampling": {"steps": None}}}
    return entries, changes


def test_changes_are_paired_per_sample_with_an_interval(study):
    frame = sensitivity.build_table(*study, combined="all", n_boot=500)
    assert list(frame.variant) == ["default", "default", "clip", "clip", "all", "all", "all"]
    head = frame[(frame.variant == "clip") & (frame.classifier == "nonrobust")].iloc[0]
    assert head.changes == "clip_x0=true" and head.role == "factor"
    assert head.judge_accuracy_change == pytest.approx(0.5) and head.accuracy_change == pytest.approx(1.0)
    # every pair differs by 1 on even samples and 0 on odd ones: resampling moves the mean, but not past [0, 1]
    assert 0 < head.judge_accuracy_change_low < 0.5 < head.judge_accuracy_change_high < 1
    reused = frame[(frame.variant == "clip") & (frame.classifier == "robust")].iloc[0]
    assert reused.judge_accuracy_change == reused.judge_accuracy_change_low == reused.judge_accuracy_change_high == 0
    assert set(frame[frame.variant == "all"].role) == {"combined", "sweep"}
    assert frame[frame.variant == "all"].changes.iloc[0] == "clip_x0=true, steps=all"


def test_verdicts_follow_from_the_interval_of_the_change():
    E = sensitivity.Estimate
    assert sensitivity.verdict(E(0.2, 0.05, 0.4)) == sensitivity.TOWARDS
    assert sensitivity.verdict(E(-0.2, -0.4, -0.01)) == sensitivity.AWAY
    assert sensitivity.verdict(E(0.1, -0.05, 0.3)) == sensitivity.NO_EFFECT
    assert sensitivity.reaches_paper(E(0.8, 0.72, 0.9)) and not sensitivity.reaches_paper(E(0.8, 0.70, 0.9))


def test_findings_section_states_the_share_of_the_gap_each_setting_closes(study, tmp_path):
    frame = sensitivity.build_table(*study, combined="all", n_boot=500)
    text = sensitivity.render(frame, "sensitivity.csv")
    # default judge 0%: the gap to 85.94% is 85.9 points; clipping closes 50 points of it = 58%
    assert "judge: 85.9)" in text
    clip = next(line for line in text.splitlines() if line.startswith("| clip |"))
    assert "| 50.0 [" in clip and "| 58 [" in clip and sensitivity.TOWARDS in clip
    combined = next(line for line in text.splitlines() if line.startswith("| all |"))
    assert "reaches the paper under the judge" in combined
    assert "| 2 | 100.0 [95.0, 100.0] | 0.0 [0.0, 5.0] |" in text  # the sweep row, judged: guide only
    assert "under the guide only" in text.split("Guidance scale")[1]


def test_the_cli_writes_the_table_and_a_figure(study, tmp_path):
    entries, changes = study
    csv, png = tmp_path / "sensitivity.csv", tmp_path / "sensitivity.png"
    args = ["sensitivity", "--metrics", *[f"{v}={p}" for v, p in entries], "--changes-json", json.dumps(changes),
            "--combined", "all", "--n-boot", "200", "--csv", str(csv), "--figure", str(png)]
    assert main(args) == 0
    assert csv.read_text().count("\n") == 8
    with Image.open(png) as img:
        assert img.width > 1000 and img.height > 200


def test_the_figure_leaves_out_panels_without_data(study, tmp_path, monkeypatch):
    """Only the headline cell and no scale sweep: one panel, not three with two empty."""
    from gradcheck import plots

    drawn = []
    subplots = plots.plt.subplots
    monkeypatch.setattr(plots.plt, "subplots", lambda *a, **kw: drawn.append(a[1]) or subplots(*a, **kw))
    frame = sensitivity.build_table(*study, combined="all", n_boot=100)
    plots.sensitivity_figure(frame, sensitivity.HEADLINE, 0.859, tmp_path / "all.png", "all")
    alone = frame[(frame.classifier == "nonrobust") & (frame.role != "sweep")]
    plots.sensitivity_figure(alone, sensitivity.HEADLINE, 0.859, tmp_path / "alone.png", "alone")
    assert drawn == [3, 1]
    with Image.open(tmp_path / "all.png") as full, Image.open(tmp_path / "alone.png") as one:
        assert one.width < full.width / 2


def test_cells_from_other_seeds_are_refused(study, tmp_path, caplog):
    entries, changes = study
    row = json.loads(open(entries[2][1]).read())
    row["per_sample"]["seed_index"] = [0] * 16
    other = tmp_path / "other.json"
    other.write_text(json.dumps(row))
    entries = entries[:2] + [("clip", str(other))]
    with pytest.raises(ValueError, match="were not sampled from the same replicates and seeds"):
        sensitivity.build_table(entries, changes, "all")
    with pytest.raises(ValueError, match="no cell of the 'default' variant"):
        sensitivity.build_table(entries[2:], changes, "all")
    with pytest.raises(ValueError, match="variant 'nope'"):
        sensitivity.build_table([("nope", entries[0][1])], changes, "all")
