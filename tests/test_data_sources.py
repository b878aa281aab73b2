"""The workflow on other data than SportBalls: scikit-learn's digits end to end (configs/tiny_digits.yaml),
and a user's image folder, which is checked before any job and re-imported when it changes."""

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import REPO, TINY, snakemake
from test_workflow import planned_rules

pytestmark = pytest.mark.e2e

TINY_DIGITS = [TINY, REPO / "configs" / "tiny_digits.yaml"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_digits")
    snakemake(workdir, "--cores", "2", "--resources", "gpu=1", configfile=TINY_DIGITS)
    return workdir


def test_digits_run_writes_table_findings_and_figures_for_ten_classes(digits_run):
    results = digits_run / "results"
    table = pd.read_csv(results / "table1.csv")
    assert len(table) == 4 and set(table.target.astype(str)) == {"7"}
    assert table.judge_accuracy.between(0, 1).all() and table.fid.notna().all()
    assert (table.features.str.startswith("features-resnet-")).all()  # fid_features: features, never the judge
    assert "'7'" in (results / "table1.md").read_text() and (results / "findings.md").stat().st_size > 0
    data = np.load(results / "data/digits.npz")
    assert [str(c) for c in data["classes"]] == [str(d) for d in range(10)]
    # 1,797 digits, 10% of each class held out (17 or 18), read back from the exported folder
    assert len(data["train_labels"]) + len(data["val_labels"]) == 1797 and len(data["val_labels"]) == 179
    assert data["train_images"].shape[1:] == (8, 8, 3)
    assert len(list((results / "data/digits").glob("*/*.png"))) == 1797
    quality = pd.read_csv(results / "ddpm.csv")
    shares = [f"share_{d}" for d in range(10)]
    intervals = [f"{share}{end}" for share in shares for end in ("", "_low", "_high")]
    assert [c for c in quality if c.startswith("share_")] == intervals
    assert np.allclose(quality[shares].sum(axis=1), 1)
    reports = pd.read_csv(results / "classifiers.csv")
    assert set(reports.classifier) == {"robust", "nonrobust", "judge", "features"}
    for figure in ["digits", "classifiers", "ddpm_quality", "scale_ablation", "samples_nonrobust"]:
        with Image.open(results / f"figures/{figure}.png") as image:
            image.verify()
    assert not (results / "data/sportballs.npz").exists()


def test_digits_run_is_complete(digits_run):
    assert planned_rules(snakemake(digits_run, "-n", configfile=TINY_DIGITS)) == set()


def write_folder(root, counts, size=(12, 10), mode="RGB"):
    """An ImageFolder-layout folder: class -> number of images, each a distinct flat colour."""
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            colour = (40 * k % 256, 7 * i % 256, 100) if mode == "RGB" else 20 * k + i
            Image.new(mode, size, colour).save(root / name / f"{i:03d}.png")
    return root


def folder_config(tmp_path, folder, **sections):
    cfg = {"data": {"source": "folder", "folder": str(folder), "val_fraction": 0.25},
           "sampling": {"target": "cat", "num_samples": 2, "batch_size": 2, "seeds": [0]},
           "sensitivity": None, **sections}
    path = tmp_path / "folder.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [TINY, path]


def test_a_folder_is_imported_by_its_own_rule_and_again_when_it_changes(tmp_path):
    folder = write_folder(tmp_path / "pets", {"cat": 8, "dog": 8, "eel": 8}, mode="L")  # grayscale
    configs = folder_config(tmp_path, folder)
    work = tmp_path / "work"
    plan = planned_rules(snakemake(work, "-n", configfile=configs))
    assert "import_images" in plan and not {"make_data", "export_digits"} & plan
    snakemake(work, "--cores", "1", "results/data/images.npz", configfile=configs)
    data = np.load(work / "results/data/images.npz")
    assert list(data["classes"]) == ["cat", "dog", "eel"] and data["train_images"].shape[1:] == (16, 16, 3)
    assert len(data["val_labels"]) == 6  # a quarter of each class of 8
    assert planned_rules(snakemake(work, "-n", "results/data/images.npz", configfile=configs)) == set()
    Image.new("L", (12, 10), 255).save(folder / "dog" / "new.png")  # a user adds an image
    assert planned_rules(snakemake(work, "-n", "results/data/images.npz", configfile=configs)) == {"import_images"}


# each layout error of scan_image_folder is tested in test_folder.py; here, that they stop the workflow
@pytest.mark.parametrize("problem, message", [
    ("unreadable", "cannot read image"),
    ("target", "sampling.target 'cat' is not among the folder data's classes (ant, dog)"),
    ("fid", "exceeds the 3 training images of class 'cat'"),
])
def test_a_bad_folder_stops_before_any_job_naming_it(tmp_path, problem, message):
    folder = write_folder(tmp_path / "pets", {"ant": 4, "dog": 4} if problem == "target" else {"cat": 4, "dog": 4})
    if problem == "unreadable":
        (folder / "dog" / "broken.png").write_bytes(b"not a png")
    sampling = {"target": "cat", "num_samples": 2, "batch_size": 2, "seeds": [0, 1]}  # fid: 2 x 2 > 3
    configs = folder_config(tmp_path, folder, sampling=sampling)
    proc = snakemake(tmp_path / "work", "-n", configfile=configs, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and planned_rules(proc) == set()
    assert message in out
    if problem not in ("target", "fid"):
        assert "config: data.folder: " in out and str(folder) in out
    if problem == "unreadable":
        assert str(folder / "dog" / "broken.png") in out


def test_folder_source_needs_a_folder(tmp_path):
    cfg = tmp_path / "nofolder.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": "folder"}, "sensitivity": None}))
    proc = snakemake(tmp_path / "work", "-n", configfile=[TINY, cfg], check=False)
    assert proc.returncode != 0 and "data.source is 'folder' but data.folder is not set" in proc.stdout + proc.stderr

