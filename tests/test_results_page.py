"""The results page, written from the tiny run's own outputs by gradcheck.results_page."""

import json
import re
import subprocess
import sys

import pytest

from conftest import REPO
from gradcheck.results_page import FIGURES, MissingInput, main, write_page

pytestmark = pytest.mark.e2e

_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    docs = tmp_path_factory.mktemp("docs")
    path = write_page(run / "results", docs, wall_time="3 min on the test machine")
    return path, path.read_text(encoding="utf-8")


def test_page_is_written_with_table1_rows_as_in_table1_md(run, page):
    path, text = page
    assert path.name == "results.md" and text.startswith("# Results\n")
    rows = [line for line in (run / "results/table1.md").read_text().splitlines() if line.startswith("|")]
    assert len(rows) == 14  # header, rule, 12 cells
    lines = text.splitlines()
    start = lines.index(rows[0])
    assert lines[start:start + len(rows)] == rows  # the table as table1.md has it, in one piece
    assert "3 min on the test machine" in text
    assert "## The paper's claims, checked" in text and "### The instruments" in text  # demoted one level
    assert "archive/2026-12-02-earlier-runs.md" in text


def test_every_image_resolves_to_a_copied_figure(run, page):
    path, text = page
    images = _IMAGE.findall(text)
    assert len(images) >= 14, images
    for target in images:
        copied = (path.parent / target).resolve()
        assert copied.parent == (path.parent / FIGURES).resolve(), target
        assert copied.is_file(), target
        assert copied.read_bytes() == (run / "results/figures" / copied.name).read_bytes(), target
    assert sorted(p.name for p in (path.parent / FIGURES).iterdir()) == sorted({t.split("/")[-1] for t in images})


def test_page_names_the_runs_commit_and_sums_the_job_times(run, page):
    _, text = page
    record = json.loads((run / "results/run_record.json").read_text())
    assert record["git"]["commit"] and record["git"]["commit"] in text
    assert f"Experiment `{record['config']['experiment']}`" in text
    for step in ("train_ddpm", "train_classifier_robust", "sample_cell", "evaluate_cell", "**all jobs**"):
        assert re.search(rf"^\| {re.escape(step)} \| \d+ \|", text, flags=re.M), step


def test_page_is_deterministic(run, page, tmp_path):
    _, text = page
    again = write_page(run / "results", tmp_path / "docs", wall_time="3 min on the test machine")
    assert again.read_text(encoding="utf-8") == text


def test_missing_findings_is_named_and_nothing_is_written(run, tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    for entry in (run / "results").iterdir():
        if entry.name != "findings.md":
            (results / entry.name).symlink_to(entry)
    docs = tmp_path / "docs"
    with pytest.raises(MissingInput, match=r"findings\.md"):
        write_page(results, docs)
    assert main(["--results", str(results), "--docs", str(docs)]) == 2
    assert "findings.md" in capsys.readouterr().err
    assert not docs.exists()


def test_imports_no_torch():
    code = "import sys, gradcheck.results_page; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
