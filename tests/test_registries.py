"""One registry per kind of thing: a measure added to gradcheck/measures.py reaches Table 1 and the
findings, and a trace quantity added to gradcheck/trace_quantities.py reaches the samples file and
the trace figures, with no edit elsewhere (only the code that computes it)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gradcheck import measures, plots, samples, table, trace_quantities
from gradcheck.findings import METRICS as FINDINGS_METRICS
from gradcheck.measures import Measure
from gradcheck.trace_quantities import TraceQuantity


def _cell(path, stabiliser, extra):
    row = {"classifier": "nonrobust", "x0": True, "stabiliser": stabiliser, "adam": stabiliser == "adam",
           "scale": 0.5, "unet_forward": 10, "unet_backward": 10, "classifier_forward": 10,
           "classifier_backward": 10, "replicates": 1, "n": 4, "seeds": 1, "samples_per_seed": 4, "features": "f",
           "target": "baseball", "confidence": 0.95}
    for m in measures.names():
        row |= {m: 0.5, f"{m}_low": 0.4, f"{m}_high": 0.6}
    row |= extra
    path.write_text(json.dumps(row))
    return path


def test_a_new_measure_reaches_table1_without_other_edits(tmp_path, monkeypatch):
    monkeypatch.setattr(measures, "MEASURES", measures.MEASURES + (
        Measure("sharpness", "sharpness (a.u.)", "image sharpness", 10, 1, True),))
    paths = [_cell(tmp_path / f"{s}.json", s, {"sharpness": v, "sharpness_low": v - 0.1, "sharpness_high": v + 0.1})
             for s, v in (("none", 0.25), ("adam", 0.75))]
    frame = table.load_cells(paths)
    table.write_table(frame, tmp_path / "table1.csv")
    csv = pd.read_csv(tmp_path / "table1.csv")
    assert list(csv.sharpness) == [2.5 / 10, 7.5 / 10] and "sharpness_high" in csv.columns
    md = (tmp_path / "table1.md").read_text()
    assert "sharpness (a.u.)" in md and "2.5 [1.5, 3.5]" in md and "7.5 [6.5, 8.5]" in md


def test_a_metrics_file_from_before_a_later_measure_reads_it_as_not_measured(tmp_path):
    later = [m.name for m in measures.MEASURES if m.since]
    assert later  # staleness and spread came on 2026-12-07
    old = {k: None for m in later for k in (m, f"{m}_low", f"{m}_high")}
    path = _cell(tmp_path / "old.json", "none", {})
    row = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in row.items() if k not in old}))
    frame = table.load_cells([path])
    assert frame[later].isna().all().all()
    assert table.pretty(frame)[[measures.BY_NAME[m].heading for m in later]].eq("").all().all()


def test_findings_name_every_measure_as_the_registry_does():
    for m in measures.MEASURES:
        column, label, factor, digits, higher, key = FINDINGS_METRICS[m.per_sample or m.name]
        assert (column, label, factor, digits, higher, key) == (m.name, m.description, m.factor, m.digits,
                                                                m.higher_is_better, m.per_sample)


def test_a_new_trace_quantity_is_stored_read_and_drawn_without_other_edits(tmp_path, monkeypatch):
    quantity = TraceQuantity("curvature", "How much the direction turns per step", "turn (rad)",
                             "curvature over time", limits=(0, 3.2), since="2099-01-01")
    monkeypatch.setattr(trace_quantities, "QUANTITIES", trace_quantities.QUANTITIES + (quantity,))
    steps, n = 5, 4
    trace = {q: np.full((steps, n), 0.5) for q in trace_quantities.stored()}
    trace["curvature"] = np.linspace(0, 3, steps * n).reshape(steps, n)
    new, old = tmp_path / "new.npz", tmp_path / "old.npz"
    for path, written in ((new, trace), (old, {q: v for q, v in trace.items() if q != "curvature"})):
        samples.save_samples(path, np.zeros((n, 8, 8, 3), np.uint8), list(range(n)), n, np.arange(steps)[::-1],
                             written, {"settings": {}})
    np.testing.assert_array_equal(samples.load_replicates([new])["curvature"], trace["curvature"])
    assert np.isnan(samples.load_samples(old)["curvature"]).all()  # a file from before it: not measured
    plots.trace_figure([{"classifier": "nonrobust", "x0": True, "stabiliser": "none",
                         "timesteps": np.arange(steps)[::-1], "values": trace["curvature"]}],
                       "curvature", tmp_path / "curvature.png", "curvature")
    with Image.open(tmp_path / "curvature.png") as image:
        assert image.size[0] > 300


@pytest.mark.parametrize("name", trace_quantities.DRAWN)
def test_every_drawn_trace_quantity_has_a_title_and_an_axis(name):
    q = trace_quantities.BY_NAME[name]
    assert q.title and q.axis and q.description and q.scale in ("linear", "log")
