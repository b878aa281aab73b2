"""The command line: happy path of sample/evaluate, and bad input that must fail cleanly."""

import json

import numpy as np
import pytest
from diffusers import DDPMPipeline, DDPMScheduler

from conftest import tiny_unet
from gradcheck.classifier import build_classifier, save_classifier
from gradcheck.cli import main
from gradcheck.data import CLASSES, build_dataset, save_dataset
from gradcheck.samples import load_samples


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    DDPMPipeline(unet=tiny_unet(size=8), scheduler=DDPMScheduler(num_train_timesteps=20)).save_pretrained(root / "ddpm")
    save_classifier(root / "clf.pt", build_classifier(4).eval(), CLASSES, 8, "clean")
    save_classifier(root / "clf16.pt", build_classifier(4).eval(), CLASSES, 16, "clean")
    save_dataset(root / "data.npz", build_dataset(6, 2, size=8, seed=0), seed=0, size=8)
    return root


def _sample_args(assets, out, **over):
    args = {"--ddpm": assets / "ddpm", "--classifier": assets / "clf.pt", "--target": "baseball", "--scale": "2",
            "--x0-hat": "true", "--adam": "true", "--num-samples": "3", "--batch-size": "2", "--steps": "4",
            "--out": out, **over}
    return ["sample"] + [str(x) for kv in args.items() for x in kv]


def _no_leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


def test_sample_then_evaluate(assets, tmp_path):
    out = tmp_path / "cell.npz"
    assert main(_sample_args(assets, out)) == 0
    s = load_samples(out)
    assert s["images"].shape == (3, 8, 8, 3) and s["images"].dtype == np.uint8
    assert s["cosine"].shape == (4, 3) and s["record"]["settings"]["target"] == CLASSES.index("baseball")
    metrics = tmp_path / "cell.json"
    assert main(["evaluate", "--samples", str(out), "--classifier", str(assets / "clf.pt"), "--label", "robust",
                 "--data", str(assets / "data.npz"), "--n", "3", "--features", "sportballs",
                 "--feature-classifier", str(assets / "clf.pt"), "--out", str(metrics)]) == 0
    m = json.loads(metrics.read_text())
    assert m["classifier"] == "robust" and m["n"] == 3 and m["x0"] is True and m["adam"] is True
    assert 0 <= m["accuracy"] <= 1 and np.isfinite(m["fid"]) and m["fid_features"].startswith("sportballs")


@pytest.mark.parametrize("over, message", [
    ({"--target": "golfball"}, "unknown target class 'golfball'"),
    ({"--classifier": "missing.pt"}, "classifier checkpoint not found: missing.pt"),
    ({"--ddpm": "nowhere"}, "nowhere is not a DDPM pipeline directory"),
    ({"--classifier": "CLF16"}, "trained on 16 px images but the DDPM"),
])
def test_bad_sampling_input_fails_with_a_clear_message(assets, tmp_path, caplog, over, message):
    over = {k: (assets / "clf16.pt" if v == "CLF16" else v) for k, v in over.items()}
    out = tmp_path / "cell.npz"
    assert main(_sample_args(assets, out, **over)) == 2
    assert message in caplog.text
    assert not out.exists() and _no_leftovers(tmp_path)


def test_corrupt_checkpoint_fails_cleanly(assets, tmp_path, caplog):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((assets / "clf.pt").read_bytes()[:100])
    out = tmp_path / "cell.npz"
    assert main(_sample_args(assets, out, **{"--classifier": bad})) == 2
    assert f"{bad} is corrupt" in caplog.text and not out.exists()


def test_evaluate_refuses_more_fid_images_than_samples(assets, tmp_path, caplog):
    out = tmp_path / "cell.npz"
    assert main(_sample_args(assets, out, **{"--steps": "2"})) == 0
    metrics = tmp_path / "cell.json"
    assert main(["evaluate", "--samples", str(out), "--classifier", str(assets / "clf.pt"), "--data",
                 str(assets / "data.npz"), "--n", "5", "--features", "sportballs", "--feature-classifier",
                 str(assets / "clf.pt"), "--out", str(metrics)]) == 2
    assert "--n 5 exceeds the 3 samples" in caplog.text and not metrics.exists()


@pytest.mark.parametrize("flag", ["--steps", "--num-samples", "--batch-size"])
def test_non_positive_counts_are_rejected(assets, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(_sample_args(assets, tmp_path / "x.npz", **{flag: "0"}))
    assert exc.value.code == 2
    assert "must be a positive integer, got 0" in capsys.readouterr().err


def test_make_data_writes_data_and_sheet(tmp_path):
    assert main(["make-data", "--out", str(tmp_path / "d.npz"), "--sheet", str(tmp_path / "s.png"), "--size", "8",
                 "--train-per-class", "3", "--val-per-class", "2"]) == 0
    assert (tmp_path / "d.npz").is_file() and (tmp_path / "s.png").is_file() and _no_leftovers(tmp_path)
