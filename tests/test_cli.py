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
    save_classifier(root / "judge.pt", build_classifier(4, "shufflenet_v2_x0_5").eval(), CLASSES, 8, "clean",
                    "shufflenet_v2_x0_5")
    save_classifier(root / "features.pt", build_classifier(4, "resnet18").eval(), CLASSES, 8, "clean", "resnet18")
    save_dataset(root / "data.npz", build_dataset(6, 2, size=8, seed=0), seed=0, size=8)
    return root


def _sample_args(assets, out, **over):
    args = {"--ddpm": assets / "ddpm", "--classifier": assets / "clf.pt", "--target": "baseball", "--scale": "2",
            "--x0-hat": "true", "--stabiliser": "adam", "--num-samples": "3", "--seeds": "0 1", "--batch-size": "2",
            "--steps": "4", "--judge": assets / "judge.pt", "--judge-every": "1", "--unet-dtype": "float32",
            "--out": out, **over}
    return ["sample"] + [x for key, value in args.items() for x in (key, *str(value).split(" "))]


def _evaluate_args(assets, samples, out, **over):
    args = {"--samples": samples, "--classifier": assets / "clf.pt", "--judge": assets / "judge.pt",
            "--label": "robust", "--data": assets / "data.npz", "--n": "3", "--features": "features",
            "--feature-classifier": assets / "features.pt", "--n-boot": "200", "--out": out, **over}
    return ["evaluate"] + [str(x) for kv in args.items() for x in kv]


def _no_leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


def test_sample_then_evaluate(assets, tmp_path):
    out = tmp_path / "cell.npz"
    assert main(_sample_args(assets, out)) == 0
    s = load_samples(out)
    assert s["images"].shape == (6, 8, 8, 3) and s["images"].dtype == np.uint8
    assert s["seeds"].tolist() == [0, 1, 2, 1_000_000, 1_000_001, 1_000_002]
    assert s["seed_index"].tolist() == [0, 0, 0, 1, 1, 1]
    for name in ("cosine", "grad_norm", "term_norm", "eps_cosine", "judge_confidence"):
        assert s[name].shape == (4, 6)
    assert np.isfinite(s["judge_confidence"]).all() and s["record"]["settings"]["target"] == CLASSES.index("baseball")
    metrics = tmp_path / "cell.json"
    assert main(_evaluate_args(assets, out, metrics)) == 0
    m = json.loads(metrics.read_text())
    assert m["classifier"] == "robust" and m["n"] == 3 and m["seeds"] == 2 and m["x0"] is True
    assert m["stabiliser"] == "adam" and m["adam"] is True
    assert m["features"] == "features-resnet-pool-512" and m["replicates"] == 1
    for name in ("accuracy", "judge_accuracy", "fooled", "fid", "kid", "cosine_mean", "cosine_late"):
        assert m[f"{name}_low"] <= m[name] <= m[f"{name}_high"], name
    assert 0 <= m["fooled"] <= min(m["accuracy"], 1 - m["judge_accuracy"]) + 1e-9
    assert m["per_sample"]["replicate"] == [0] * 6 and len(m["per_sample"]["cosine_late"]) == 6
    # the late window is the last quarter of the 4 steps: the last step's cosine, per sample
    s_cos = load_samples(out)["cosine"]
    assert m["per_sample"]["cosine_late"] == pytest.approx(s_cos[-1].tolist())
    assert m["per_sample"]["cosine"] == pytest.approx(np.nanmean(s_cos, axis=0).tolist())


def test_evaluate_pools_training_replicates(assets, tmp_path):
    """Two replicates' files of one cell: one row, replicate-major groups, each replicate scored by its own guide."""
    first, second = tmp_path / "cell.npz", tmp_path / "cell_r1.npz"
    assert main(_sample_args(assets, first, **{"--seeds": "0", "--num-samples": "3"})) == 0
    assert main(_sample_args(assets, second, **{"--seeds": "1000", "--num-samples": "3"})) == 0
    metrics = tmp_path / "cell.json"
    args = _evaluate_args(assets, first, metrics)
    at = args.index("--samples")
    args[at + 1:at + 2] = [str(first), str(second)]
    at = args.index("--classifier")
    args[at + 1:at + 2] = [str(assets / "clf.pt"), str(assets / "clf.pt")]
    assert main(args) == 0
    m = json.loads(metrics.read_text())
    assert m["replicates"] == 2 and m["seeds"] == 1 and m["samples_per_seed"] == 3
    assert m["per_sample"]["replicate"] == [0, 0, 0, 1, 1, 1]
    per_rep = {r["replicate"]: r for r in m["per_replicate"]}
    judge = np.array(m["per_sample"]["judge"])
    assert per_rep[0]["judge_accuracy"] == pytest.approx(judge[:3].mean())
    assert per_rep[1]["judge_accuracy"] == pytest.approx(judge[3:].mean())
    assert m["judge_accuracy"] == pytest.approx(judge.mean())
    assert m["fid"] == pytest.approx(np.mean([r["fid"] for r in m["per_replicate"]]))


@pytest.mark.parametrize("over, message", [
    ({"--target": "golfball"}, "unknown target class 'golfball'"),
    ({"--classifier": "missing.pt"}, "classifier checkpoint not found: missing.pt"),
    ({"--ddpm": "nowhere"}, "nowhere is not a DDPM pipeline directory"),
    ({"--classifier": "CLF16"}, "trained on 16 px images but the DDPM"),
    ({"--stabiliser": "momentum"}, "unknown stabiliser 'momentum'"),
    ({"--seeds": "3 3"}, "--seeds repeats a seed"),
    ({"--steps": "21"}, "--steps 21 exceeds the 20 training timesteps"),
    ({"--adam-eps": "0"}, "adam_eps must be positive, got 0.0"),
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
    assert main(_evaluate_args(assets, out, metrics, **{"--n": "5"})) == 2
    assert "--n 5 exceeds the 3 samples per seed" in caplog.text and not metrics.exists()


def test_evaluate_needs_real_images_for_every_seed(assets, tmp_path, caplog):
    out = tmp_path / "cell.npz"
    assert main(_sample_args(assets, out, **{"--steps": "2", "--seeds": "0 1 2"})) == 0
    metrics = tmp_path / "cell.json"
    assert main(_evaluate_args(assets, out, metrics)) == 2  # 6 real baseballs, 3 seeds x 3 needed
    assert "3 seeds (of every replicate) x 3 need 9" in caplog.text and not metrics.exists()


@pytest.mark.parametrize("flag", ["--steps", "--num-samples", "--batch-size"])
def test_non_positive_counts_are_rejected(assets, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(_sample_args(assets, tmp_path / "x.npz", **{flag: "0"}))
    assert exc.value.code == 2
    assert "must be a positive integer, got 0" in capsys.readouterr().err


def test_authors_settings_reach_the_sampler_and_its_record(assets, tmp_path):
    out = tmp_path / "authors.npz"
    over = {"--steps": "all", "--objective": "logit", "--clip-x0": "true", "--normalise": "false",
            "--adam-eps": "1e-4", "--bias-correction": "false", "--unet-dtype": "bfloat16"}
    assert main(_sample_args(assets, out, **over)) == 0
    s = load_samples(out)
    record = s["record"]
    assert record["num_inference_steps"] == record["num_train_timesteps"] == 20 and s["cosine"].shape == (20, 6)
    assert record["unet_dtype"] == "bfloat16"
    assert {k: record["settings"][k] for k in ("objective", "clip_x0", "normalise", "adam_eps", "bias_correction")} \
        == {"objective": "logit", "clip_x0": True, "normalise": False, "adam_eps": 1e-4, "bias_correction": False}
    default = tmp_path / "default.npz"
    assert main(_sample_args(assets, default, **{"--steps": "all"})) == 0
    assert not np.array_equal(load_samples(default)["images"], s["images"])
    metrics = tmp_path / "authors.json"
    assert main(_evaluate_args(assets, out, metrics)) == 0
    per_sample = json.loads(metrics.read_text())["per_sample"]
    assert per_sample["seed_index"] == [0, 0, 0, 1, 1, 1] and set(per_sample["judge"]) <= {0, 1}
    assert np.mean(per_sample["guide"]) == pytest.approx(json.loads(metrics.read_text())["accuracy"])


def test_a_method_with_a_reference_records_its_compute_and_informativeness(assets, tmp_path):
    """--method freedom (K = 2 passes through the UNet) with a reference: counts in the file, the record
    and the metrics; informativeness measured at the judge's steps, its mean in the metrics."""
    out = tmp_path / "freedom.npz"
    assert main(_sample_args(assets, out, **{"--method": "freedom", "--reference": assets / "clf.pt",
                                             "--judge-every": "2", "--stabiliser": "none"})) == 0
    s = load_samples(out)
    assert s["record"]["step"] == {"look": "x0_hat", "land": "mean", "step_rule": "eq2", "recurrence": 2,
                                   "inner_steps": 1}
    per_sample = {"unet_forward": 8, "unet_backward": 8, "classifier_forward": 8, "classifier_backward": 8}
    assert s["record"]["compute_per_sample"] == per_sample
    assert {k: int(v.sum()) for k, v in s["compute"].items()} == per_sample
    info = s["informativeness"]
    assert np.isfinite(info[[0, 2, 3]]).all() and np.isnan(info[1]).all() and (np.abs(info[[0, 2, 3]]) <= 1).all()
    metrics = tmp_path / "freedom.json"
    assert main(_evaluate_args(assets, out, metrics)) == 0
    m = json.loads(metrics.read_text())
    assert {k: m[k] for k in per_sample} == per_sample
    assert m["informativeness"] == pytest.approx(np.nanmean(info, axis=0).mean())
    assert m["informativeness_low"] <= m["informativeness"] <= m["informativeness_high"]


def test_a_bad_method_is_refused_by_the_cli(assets, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_sample_args(assets, tmp_path / "x.npz", **{"--method": "langevin"}))
    assert "--method: invalid choice: 'langevin'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_sample_args(assets, tmp_path / "x.npz", **{"--recurrence": "-1"}))


def test_make_data_writes_data_and_sheet(tmp_path):
    assert main(["make-data", "--out", str(tmp_path / "d.npz"), "--sheet", str(tmp_path / "s.png"), "--size", "8",
                 "--train-per-class", "3", "--val-per-class", "2"]) == 0
    assert (tmp_path / "d.npz").is_file() and (tmp_path / "s.png").is_file() and _no_leftovers(tmp_path)


def test_train_ddpm_with_snapshots_then_ddpm_quality(assets, tmp_path):
    import pandas as pd

    ddpm = tmp_path / "ddpm"
    assert main(["train-ddpm", "--data", str(assets / "data.npz"), "--out", str(ddpm), "--block-out-channels", "32",
                 "32", "--attention", "false", "false", "--timesteps", "40", "--scale-betas", "true", "--steps", "4",
                 "--batch-size", "4", "--warmup-steps", "1", "--lr-schedule", "cosine", "--grad-clip", "1",
                 "--loss-weighting", "min_snr", "--precision", "bfloat16", "--snapshot-every", "2",
                 "--mid-attention", "false"]) == 0
    assert json.loads((ddpm / "unet" / "config.json").read_text())["add_attention"] is False
    csv, figure = tmp_path / "ddpm.csv", tmp_path / "ddpm.png"
    assert main(["ddpm-quality", "--ddpm", str(ddpm), "--judge", str(assets / "judge.pt"), "--data",
                 str(assets / "data.npz"), "--seeds", "0", "1", "--num-samples", "2", "--steps", "3",
                 "--real-draws", "2", "--csv", str(csv), "--figure", str(figure)]) == 0
    frame = pd.read_csv(csv)
    assert frame["step"].tolist() == [2, 4] and frame["final"].tolist() == [False, True]
    shares = frame[[f"share_{c}" for c in CLASSES]]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    for c in CLASSES:  # each share inside its own interval, which stays in [0, 1]
        assert (0 <= frame[f"share_{c}_low"]).all() and (frame[f"share_{c}_low"] <= frame[f"share_{c}"]).all()
        assert (frame[f"share_{c}"] <= frame[f"share_{c}_high"]).all() and (frame[f"share_{c}_high"] <= 1).all()
    assert (frame["samples"] == 4).all() and (frame["sampling_steps"] == 3).all()
    np.testing.assert_allclose(frame["fid_ratio"], frame["fid"] / frame["fid_real_vs_real"])
    assert figure.stat().st_size > 0 and _no_leftovers(tmp_path)


@pytest.mark.parametrize("command", ["ddpm-quality", "evaluate"])
def test_a_confidence_outside_0_and_1_is_refused_naming_the_flag(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--confidence", "95"])
    assert "argument --confidence: must be between 0 and 1 (e.g. 0.95), got 95.0" in capsys.readouterr().err
