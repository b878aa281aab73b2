"""The training-replicate figures and the earlier DDPMs' headline numbers (docs/data/headline_by_ddpm.csv)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gradcheck.commands.report import comparable_ddpms
from gradcheck.plots import headline_fid_figure, replicate_figure

REPO = Path(__file__).resolve().parents[1]
HEADLINE_CSV = REPO / "docs" / "data" / "headline_by_ddpm.csv"
CELLS = ["robust, x_t", "robust, x0-hat + ADAM", "nonrobust, x0-hat", "nonrobust, x0-hat + ADAM"]


def frames(replicates: int = 3, guide: bool = False, seed: int = 0):
    """A made-up pooled table and its per-replicate values, seeded."""
    rng = np.random.default_rng(seed)
    per = pd.DataFrame([dict(label=label, replicate=r, judge_accuracy=rng.uniform(0, 1), accuracy=rng.uniform(0, 1))
                        for label in CELLS for r in range(replicates)])
    mean = per.groupby("label", sort=False)[["judge_accuracy", "accuracy"]].mean().reindex(CELLS)
    pooled = pd.DataFrame({"label": CELLS})
    for metric in ("judge_accuracy", "accuracy"):
        pooled[metric] = mean[metric].to_numpy()
        pooled[f"{metric}_low"] = np.clip(pooled[metric] - 0.1, 0, 1)
        pooled[f"{metric}_high"] = np.clip(pooled[metric] + 0.1, 0, 1)
    if not guide:
        pooled = pooled.drop(columns=["accuracy", "accuracy_low", "accuracy_high"])
        per = per.drop(columns=["accuracy"])
    return pooled, per


def points(seed: int = 0, n: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    value = rng.uniform(0.1, 0.6, n)
    frame = pd.DataFrame({"label": [f"DDPM {i}" for i in range(n)], "source": ["earlier"] * (n - 1) + ["this run"],
                          "fid_ratio": rng.uniform(1.4, 5.0, n), "judge_accuracy": value,
                          "judge_accuracy_low": value - 0.1, "judge_accuracy_high": value + 0.1})
    frame.loc[0, ["judge_accuracy_low", "judge_accuracy_high"]] = np.nan  # a point without an interval
    return frame


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        return image.size


def only(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_replicate_figure_is_a_png(tmp_path):
    pooled, per = frames()
    replicate_figure(pooled, per, tmp_path / "replicates.png", title="made up")
    width, height = png_size(tmp_path / "replicates.png")
    assert width > 300 and height > 200
    assert only(tmp_path) == ["replicates.png"]  # no temporary left beside it


def test_replicate_figure_draws_the_guide_panel_when_given(tmp_path):
    judge_only = frames(guide=False)
    both = frames(guide=True)
    replicate_figure(*judge_only, tmp_path / "judge.png")
    replicate_figure(*both, tmp_path / "both.png")
    assert png_size(tmp_path / "both.png")[0] > 1.6 * png_size(tmp_path / "judge.png")[0]


@pytest.mark.parametrize("frame, column", [("pooled", "judge_accuracy_high"), ("per_replicate", "replicate")])
def test_replicate_figure_missing_column_leaves_nothing(tmp_path, frame, column):
    pooled, per = frames()
    if frame == "pooled":
        pooled = pooled.drop(columns=[column])
    else:
        per = per.drop(columns=[column])
    out = tmp_path / "figs" / "replicates.png"
    with pytest.raises(ValueError, match=column):
        replicate_figure(pooled, per, out)
    assert not out.exists()
    assert not out.parent.exists() or only(out.parent) == []


def test_replicate_figure_failing_draw_keeps_the_old_file(tmp_path):
    pooled, per = frames()
    pooled.loc[1, "judge_accuracy_low"] = pooled.loc[1, "judge_accuracy"] + 0.05  # interval misses its value
    out = tmp_path / "replicates.png"
    out.write_bytes(b"old")
    with pytest.raises(ValueError):
        replicate_figure(pooled, per, out)
    assert out.read_bytes() == b"old"
    assert only(tmp_path) == ["replicates.png"]


def test_replicate_figure_refuses_cells_missing_from_pooled(tmp_path):
    pooled, per = frames()
    with pytest.raises(ValueError, match="robust, x_t"):
        replicate_figure(pooled[pooled.label != "robust, x_t"], per, tmp_path / "r.png")
    assert only(tmp_path) == []


def test_headline_fid_figure_fit_matches_polyfit(tmp_path):
    frame = points()
    fit = headline_fid_figure(frame, tmp_path / "fid.png", title="made up")
    slope, intercept = np.polyfit(frame.fid_ratio.to_numpy(), frame.judge_accuracy.to_numpy(), 1)
    assert fit["slope"] == pytest.approx(slope, rel=1e-12, abs=1e-12)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-12, abs=1e-12)
    width, height = png_size(tmp_path / "fid.png")
    assert width > 300 and height > 200
    assert only(tmp_path) == ["fid.png"]


def test_headline_fid_figure_one_distinct_x_has_no_line(tmp_path):
    frame = points(n=3).assign(fid_ratio=1.56)
    fit = headline_fid_figure(frame, tmp_path / "fid.png")
    assert fit["slope"] is None and fit["intercept"] is None
    png_size(tmp_path / "fid.png")


def test_headline_fid_figure_missing_column_leaves_nothing(tmp_path):
    out = tmp_path / "fid.png"
    with pytest.raises(ValueError, match="fid_ratio"):
        headline_fid_figure(points().drop(columns=["fid_ratio"]), out)
    with pytest.raises(ValueError, match="source"):
        headline_fid_figure(points().assign(source="later"), out)
    assert only(tmp_path) == []


def test_headline_fid_figure_draws_the_repository_history(tmp_path):
    history = pd.read_csv(HEADLINE_CSV)
    fit = headline_fid_figure(history, tmp_path / "history.png")
    slope, _ = np.polyfit(history.fid_ratio, history.judge_accuracy, 1)
    assert fit["slope"] == pytest.approx(slope) and fit["slope"] < 0  # better DDPM (lower ratio), higher accuracy
    png_size(tmp_path / "history.png")


def test_headline_by_ddpm_csv():
    frame = pd.read_csv(HEADLINE_CSV)
    assert list(frame.columns) == ["label", "source", "fid_ratio", "judge_accuracy", "judge_accuracy_low",
                                   "judge_accuracy_high", "features", "samples", "date", "commit", "note"]
    assert (frame.samples > 0).all() and frame.features.str.len().gt(0).all()
    assert len(frame) >= 2 and frame.label.is_unique
    assert set(frame.source) == {"earlier"}
    assert (frame.fid_ratio > 1).all()
    for column in ("judge_accuracy", "judge_accuracy_low", "judge_accuracy_high"):
        known = frame[column].dropna()
        assert ((known >= 0) & (known <= 1)).all(), column
    assert frame.judge_accuracy.notna().all()
    given = frame.judge_accuracy_low.notna() & frame.judge_accuracy_high.notna()
    rows = frame[given]
    assert (rows.judge_accuracy_low <= rows.judge_accuracy).all()
    assert (rows.judge_accuracy <= rows.judge_accuracy_high).all()
    assert frame.note.str.len().gt(20).all() and frame.commit.str.fullmatch(r"[0-9a-f]{7,40}").all()


def _final(features="features-resnet-pool-512", samples=32):
    return pd.DataFrame({"replicate": [0, 1], "features": features, "samples": samples, "fid_ratio": [0.5, 0.7]})


def test_only_ddpms_measured_as_this_run_share_its_axis():
    """An FID ratio on other features, or from another number of samples, is another quantity."""
    earlier = pd.read_csv(HEADLINE_CSV)
    kept, note = comparable_ddpms(earlier, _final(), "history.csv")
    assert kept.empty and f"{len(earlier)} earlier DDPM(s) not drawn" in note
    assert "sportballs-shufflenetv2-pool-1024 at 96 samples" in note and "features-resnet-pool-512 at 32" in note
    same = earlier.iloc[0]
    kept, note = comparable_ddpms(earlier, _final(same.features, same.samples), "history.csv")
    assert len(kept) == len(earlier) and note == ""
    mixed = earlier.assign(samples=[32] + [96] * (len(earlier) - 1))
    kept, note = comparable_ddpms(mixed, _final(same.features, 32), "history.csv")
    assert list(kept.label) == [same.label] and note.startswith(f"{len(earlier) - 1} earlier")


def test_earlier_ddpms_without_how_they_were_measured_are_refused():
    with pytest.raises(ValueError, match="history.csv: no features or samples column"):
        comparable_ddpms(pd.read_csv(HEADLINE_CSV).drop(columns=["features", "samples"]), _final(), "history.csv")
    with pytest.raises(ValueError, match="measured differently"):
        comparable_ddpms(pd.read_csv(HEADLINE_CSV), _final().assign(samples=[32, 96]), "history.csv")


def test_headline_figure_prints_its_note(tmp_path):
    plain, noted = tmp_path / "plain.png", tmp_path / "noted.png"
    headline_fid_figure(points(), plain)
    headline_fid_figure(points(), noted, note="6 earlier DDPM(s) not drawn: " + "their FID ratios are elsewhere " * 6)
    assert png_size(noted)[1] > png_size(plain)[1]  # the note's lines lengthen the figure


def _headline_inputs(tmp_path, features):
    for name, accuracies in (("default", [0.8, 0.5]), ("no_clip", [0.7, 0.3])):
        cell = {"scale": 0.5, "per_replicate": [{"replicate": r, "judge_accuracy": a} for r, a in enumerate(accuracies)]}
        (tmp_path / f"{name}.json").write_text(json.dumps(cell))
    _final(features, 96).assign(final="true").to_csv(tmp_path / "ddpm.csv", index=False)
    return ["figure-headline", "--metrics", str(tmp_path / "default.json"), "--ddpm", str(tmp_path / "ddpm.csv"),
            "--earlier", str(HEADLINE_CSV), "--history-metrics", str(tmp_path / "no_clip.json"),
            "--variant", "no_clip", "--out", str(tmp_path / "fid.png")]


def test_the_headline_figure_draws_the_variant_only_beside_comparable_ddpms(tmp_path, monkeypatch):
    """At the earlier DDPMs' features, the variant at their settings; otherwise the run's own cell."""
    from gradcheck import plots
    from gradcheck.cli import main

    drawn = []
    monkeypatch.setattr(plots, "headline_fid_figure", lambda frame, out, **kw: drawn.append((frame, kw)))
    same = pd.read_csv(HEADLINE_CSV).features.iloc[0]
    assert main(_headline_inputs(tmp_path, same)) == 0
    frame, kw = drawn.pop()
    assert list(frame.label[:2]) == ["replicate 0, no_clip", "replicate 1, no_clip"] and kw["note"] == ""
    assert list(frame.judge_accuracy[:2]) == [0.7, 0.3] and (frame.source == "earlier").sum() == 6
    assert main(_headline_inputs(tmp_path, "features-resnet-pool-512")) == 0
    frame, kw = drawn.pop()
    assert list(frame.label) == ["replicate 0", "replicate 1"] and list(frame.judge_accuracy) == [0.8, 0.5]
    assert "6 earlier DDPM(s) not drawn" in kw["note"] and "not its variant no_clip" in kw["note"]
    assert "sensitivity variant" not in kw["title"]


def test_replicates_that_share_one_ddpm_all_sit_at_its_fid_ratio(tmp_path, monkeypatch, caplog):
    from gradcheck import plots
    from gradcheck.cli import main

    drawn = []
    monkeypatch.setattr(plots, "headline_fid_figure", lambda frame, out, **kw: drawn.append((frame, kw)))
    cell = {"scale": 0.5, "per_replicate": [{"replicate": r, "judge_accuracy": a} for r, a in enumerate([0.8, 0.3, 0.4])]}
    (tmp_path / "cell.json").write_text(json.dumps(cell))
    _final().iloc[:1].assign(final="true").to_csv(tmp_path / "ddpm.csv", index=False)
    command = ["figure-headline", "--metrics", str(tmp_path / "cell.json"), "--ddpm", str(tmp_path / "ddpm.csv"),
               "--out", str(tmp_path / "fid.png")]
    assert main(command + ["--ddpm-of", "0", "0", "0"]) == 0
    frame, kw = drawn.pop()
    assert list(frame.fid_ratio) == [0.5] * 3 and list(frame.judge_accuracy) == [0.8, 0.3, 0.4]
    assert "one DDPM for all 3 replicates" in kw["note"]
    assert main(command) == 2  # by default each replicate samples with its own DDPM; ddpm.csv has only replicate 0's
    assert "--ddpm: no final row for DDPM replicate(s) [1, 2] (it has [0])" in caplog.text
    assert main(command + ["--ddpm-of", "0", "0"]) == 2 and "--ddpm-of names 2 DDPM(s) for the cell's 3" in caplog.text


def test_replicates_with_their_own_ddpms_sit_at_their_own_fid_ratios(tmp_path, monkeypatch):
    from gradcheck import plots
    from gradcheck.cli import main

    drawn = []
    monkeypatch.setattr(plots, "headline_fid_figure", lambda frame, out, **kw: drawn.append((frame, kw)))
    cell = {"scale": 0.5, "per_replicate": [{"replicate": r, "judge_accuracy": a} for r, a in enumerate([0.8, 0.3])]}
    (tmp_path / "cell.json").write_text(json.dumps(cell))
    _final().assign(final="true").to_csv(tmp_path / "ddpm.csv", index=False)
    assert main(["figure-headline", "--metrics", str(tmp_path / "cell.json"), "--ddpm", str(tmp_path / "ddpm.csv"),
                 "--ddpm-of", "1", "0", "--out", str(tmp_path / "fid.png")]) == 0
    frame, kw = drawn.pop()
    assert list(frame.fid_ratio) == [0.7, 0.5] and "one DDPM" not in kw["note"]


def test_a_save_that_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def half_written(self, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError):
        replicate_figure(*frames(), tmp_path / "replicates.png")
    with pytest.raises(OSError):
        headline_fid_figure(points(), tmp_path / "fid.png")
    assert only(tmp_path) == []
