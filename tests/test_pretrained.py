"""Bringing your own models: content hashes, the DDPM pipeline check and import, brought
classifiers (TorchScript and GradCheck files), their CLI commands and the run record."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler
from torchvision.models import mobilenet_v3_small, shufflenet_v2_x0_5

from conftest import REPO, tiny_unet
from gradcheck.classifier import (build_classifier, evaluate, load_classifier, pooled_feature_extractor,
                                  save_classifier)
from gradcheck.cli import main
from gradcheck.data import CLASSES, images_to_tensor, save_dataset
from gradcheck.ddpm import build_scheduler, load_pipeline
from gradcheck.metrics import PooledClassifierFeatures
from gradcheck.pretrained import (PRETRAINED_JSON, bring_classifier, bring_ddpm, check_classifier_file,
                                  check_ddpm_pipeline, classifier_format, content_hash, linear_beta_range,
                                  model_record)
from gradcheck.provenance import run_record

T, SIZE = 30, 8  # the tiny DDPM: 30 steps, scaled betas, 8 px
# torch.jit.save and load warn that TorchScript is deprecated; users still bring such files
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


def _script(module):
    return torch.jit.script(module)


class TinyNet(torch.nn.Module):
    """A small classifier: one convolution, global pooling, a linear layer."""

    def __init__(self, classes: int = 4, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.head = torch.nn.Linear(6, classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def cli(*args) -> int:
    """``gradcheck`` with one torch thread: the command would take every core, which a test shares."""
    return main([*map(str, args), "--threads", "1"])


def _no_leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("brought")
    DDPMPipeline(unet=tiny_unet(SIZE), scheduler=build_scheduler(T, True)).save_pretrained(root / "ddpm")
    rng = np.random.default_rng(0)
    data = {"train_images": rng.integers(0, 256, (12, SIZE, SIZE, 3), dtype=np.uint8),
            "train_labels": np.arange(12) % 4,
            "val_images": rng.integers(0, 256, (10, SIZE, SIZE, 3), dtype=np.uint8),
            "val_labels": np.arange(10) % 4}
    save_dataset(root / "data.npz", data, seed=0, size=SIZE, classes=CLASSES)
    torch.jit.save(_script(TinyNet(4).eval()), str(root / "tiny.ts"))
    torch.jit.save(_script(TinyNet(3).eval()), str(root / "three.ts"))
    torch.jit.save(_script(mobilenet_v3_small(num_classes=4).eval()), str(root / "judge.pt"))
    torch.manual_seed(0)
    save_classifier(root / "gradcheck.pt", build_classifier(4).eval(), CLASSES, SIZE, "clean")
    return root


# --- content_hash ---------------------------------------------------------------------------


def test_content_hash_of_a_file_is_its_sha256(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"\x00weights\xff" * 1000)
    assert content_hash(f) == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()


def test_content_hash_of_a_directory_follows_names_and_bytes(tmp_path):
    def tree(root, files):
        for rel, content in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
        return root

    files = {"model_index.json": b"{}", "unet/config.json": b'{"a": 1}', "unet/w.safetensors": b"\x01" * 64}
    a, b = tree(tmp_path / "a", files), tree(tmp_path / "b", files)
    assert content_hash(a) == content_hash(b)  # where it lies does not count
    (b / "unet/w.safetensors").write_bytes(b"\x01" * 63 + b"\x02")
    assert content_hash(b) != content_hash(a)  # one byte
    c = tree(tmp_path / "c", files)
    (c / "unet/w.safetensors").rename(c / "unet/v.safetensors")
    assert content_hash(c) != content_hash(a)  # a rename
    d = tree(tmp_path / "d", {**files, "extra": b""})
    assert content_hash(d) != content_hash(a)  # an empty file more
    with pytest.raises(FileNotFoundError, match="missing"):
        content_hash(tmp_path / "missing")


# --- the DDPM -------------------------------------------------------------------------------


@pytest.mark.parametrize("timesteps, scale", [(30, True), (400, True), (1000, False), (50, False)])
def test_beta_range_is_the_one_build_scheduler_uses(timesteps, scale):
    config = build_scheduler(timesteps, scale).config
    assert linear_beta_range(timesteps, scale) == (config.beta_start, config.beta_end)


def test_a_matching_pipeline_passes_and_is_brought_whole(assets, tmp_path):
    summary = check_ddpm_pipeline(assets / "ddpm", SIZE, T, True)
    assert summary["sample_size"] == SIZE and summary["timesteps"] == T and summary["scheduler"] == "DDPMScheduler"
    assert summary["scheduler_differences"] == {}
    out = tmp_path / "models" / "ddpm"
    record = bring_ddpm(assets / "ddpm", out, SIZE, T, True)
    assert json.loads((out / PRETRAINED_JSON).read_text()) == record
    assert record["source"] == str((assets / "ddpm").absolute())
    assert record["sha256"] == content_hash(assets / "ddpm")
    original = tiny_unet(SIZE)
    assert record["parameters"] == sum(p.numel() for p in original.parameters())
    assert record["sample_size"] == SIZE and record["timesteps"] == T
    unet, scheduler = load_pipeline(out)
    state = unet.state_dict()
    assert state.keys() == original.state_dict().keys()
    for key, value in original.state_dict().items():
        assert torch.equal(state[key], value), key
    assert isinstance(scheduler, DDPMScheduler)
    torch.testing.assert_close(scheduler.alphas_cumprod, build_scheduler(T, True).alphas_cumprod)
    assert _no_leftovers(out.parent)


def test_the_pipeline_check_reads_json_only(assets):
    """The workflow checks a brought DDPM while it parses: that must not import torch or diffusers."""
    code = ("import sys; from gradcheck.pretrained import check_ddpm_pipeline; "
            f"check_ddpm_pipeline({str(assets / 'ddpm')!r}, {SIZE}, {T}, True); "
            "assert not {'torch', 'diffusers'} & set(sys.modules), 'imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def _variant(assets, tmp_path, rel=None, **changes):
    """A copy of the tiny pipeline with ``changes`` made to the JSON file ``rel``."""
    path = tmp_path / "variant"
    shutil.copytree(assets / "ddpm", path)
    if rel:
        config = json.loads((path / rel).read_text())
        config.update(changes)
        (path / rel).write_text(json.dumps(config))
    return path


UNET, SCHED, INDEX = "unet/config.json", "scheduler/scheduler_config.json", "model_index.json"


@pytest.mark.parametrize("rel, changes, settings, expected", [
    (UNET, {"sample_size": 16}, {}, ["16x16 px", "data.image_size: 16"]),
    (UNET, {"sample_size": [8, 16]}, {}, ["8x16 px", "data.image_size"]),
    (UNET, {"in_channels": 1}, {}, ["in_channels = 1", "RGB"]),
    (UNET, {"out_channels": 6}, {}, ["out_channels = 6"]),
    (UNET, {"num_class_embeds": 4}, {}, ["class-conditional"]),
    (SCHED, {"prediction_type": "v_prediction"}, {}, ["prediction_type", "'v_prediction'"]),
    (SCHED, {"beta_schedule": "squaredcos_cap_v2"}, {}, ["beta_schedule", "squaredcos_cap_v2"]),
    (SCHED, {"beta_end": 0.6667}, {}, ["beta_start, beta_end", "ddpm.scale_betas = true"]),
    (SCHED, {"rescale_betas_zero_snr": True}, {}, ["rescale_betas_zero_snr"]),
    (None, {}, {"timesteps": 40}, ["num_train_timesteps = 30", "ddpm.timesteps is 40", "ddpm.timesteps: 30"]),
    (None, {}, {"scale_betas": False}, ["ddpm.scale_betas = false", "set ddpm.scale_betas: true"]),
    (None, {}, {"image_size": 16}, ["8x8 px", "data.image_size is 16"]),
    (INDEX, {"vqvae": ["diffusers", "VQModel"]}, {}, ["components", "vqvae"]),
    (INDEX, {"unet": ["diffusers", "UNet2DConditionModel"]}, {}, ["UNet2DConditionModel"]),
    (INDEX, {"scheduler": ["diffusers", "ScoreSdeVeScheduler"]}, {}, ["ScoreSdeVeScheduler"]),
])
def test_each_mismatch_names_the_pipeline_and_the_key(assets, tmp_path, rel, changes, settings, expected):
    path = _variant(assets, tmp_path, rel, **changes)
    args = {"image_size": SIZE, "timesteps": T, "scale_betas": True, **settings}
    with pytest.raises(ValueError) as err:
        check_ddpm_pipeline(path, **args)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, (part, message)
    with pytest.raises(ValueError):  # and bring_ddpm refuses it before writing anything
        bring_ddpm(path, tmp_path / "out", **args)
    assert not (tmp_path / "out").exists() and _no_leftovers(tmp_path)


@pytest.mark.parametrize("missing", ["", "model_index.json", "unet/config.json", "scheduler/scheduler_config.json"])
def test_a_missing_directory_or_file_is_named(assets, tmp_path, missing):
    path = _variant(assets, tmp_path) if missing else tmp_path / "nowhere"
    if missing:
        (path / missing).unlink()
    with pytest.raises(ValueError, match="not found" if not missing else f"has no {missing}") as err:
        check_ddpm_pipeline(path, SIZE, T, True)
    assert str(path) in str(err.value)


def test_a_ddim_scheduler_is_brought_as_a_ddpm_scheduler(assets, tmp_path):
    path = _variant(assets, tmp_path, INDEX, scheduler=["diffusers", "DDIMScheduler"])
    shutil.rmtree(path / "scheduler")
    DDIMScheduler.from_config(build_scheduler(T, True).config).save_pretrained(path / "scheduler")
    assert check_ddpm_pipeline(path, SIZE, T, True)["scheduler"] == "DDIMScheduler"
    record = bring_ddpm(path, tmp_path / "out", SIZE, T, True)
    assert record["scheduler_converted_from"] == "DDIMScheduler"
    _, scheduler = load_pipeline(tmp_path / "out")
    assert type(scheduler) is DDPMScheduler
    torch.testing.assert_close(scheduler.alphas_cumprod, build_scheduler(T, True).alphas_cumprod)
    assert (path / "scheduler" / "scheduler_config.json").read_text().count("DDIMScheduler")  # source untouched


def test_a_square_sample_size_pair_is_brought_as_one_side(assets, tmp_path):
    path = _variant(assets, tmp_path, UNET, sample_size=[SIZE, SIZE])
    bring_ddpm(path, tmp_path / "out", SIZE, T, True)
    assert load_pipeline(tmp_path / "out")[0].config.sample_size == SIZE  # as the sampler reads it


def test_sampling_settings_that_differ_are_reported_and_kept(assets, tmp_path):
    path = _variant(assets, tmp_path, SCHED, variance_type="fixed_large", clip_sample=False)
    summary = check_ddpm_pipeline(path, SIZE, T, True)
    assert summary["scheduler_differences"] == {"variance_type": ["fixed_large", "fixed_small"],
                                                "clip_sample": [False, True]}
    bring_ddpm(path, tmp_path / "out", SIZE, T, True)
    assert load_pipeline(tmp_path / "out")[1].config.variance_type == "fixed_large"


# --- classifiers ----------------------------------------------------------------------------


def _val(assets):
    with np.load(assets / "data.npz") as npz:
        return images_to_tensor(npz["val_images"]), torch.as_tensor(npz["val_labels"], dtype=torch.long)


def test_formats_are_told_by_content(assets, tmp_path):
    shutil.copy(assets / "tiny.ts", tmp_path / "looks_like_weights.pt")
    assert classifier_format(tmp_path / "looks_like_weights.pt") == "torchscript"
    assert classifier_format(assets / "judge.pt") == "torchscript"
    assert classifier_format(assets / "gradcheck.pt") == "gradcheck"


def test_a_torchscript_classifier_is_brought_and_loads_as_a_trained_one(assets, tmp_path):
    out, report = tmp_path / "robust.pt", tmp_path / "robust.json"
    result = bring_classifier(assets / "tiny.ts", out, report, assets / "data.npz", "robust", T, True)
    assert json.loads(report.read_text()) == json.loads(json.dumps(result))
    assert result["mode"] == "pretrained" and result["best_epoch"] is None and result["epochs_run"] == 0
    assert result["format"] == "torchscript" and result["source"] == str((assets / "tiny.ts").absolute())
    assert result["sha256"] == content_hash(assets / "tiny.ts") and result["device"]["device"] == "cpu"
    original = torch.jit.load(str(assets / "tiny.ts"))
    assert result["parameters"] == sum(p.numel() for p in original.parameters())
    # the accuracies are those of the module itself, on the data set's validation images
    images, labels = _val(assets)
    assert {k: result[k] for k in ("clean_accuracy", "noisy_accuracy")} == \
        evaluate(original, images, labels, build_scheduler(T, True))
    torch.load(out, map_location="cpu", weights_only=True)  # no pickled code in the file
    model, meta = load_classifier(out)
    assert meta["architecture"] == "torchscript" and meta["mode"] == "pretrained"
    assert meta["classes"] == list(CLASSES) and meta["image_size"] == SIZE
    assert meta["origin"]["sha256"] == result["sha256"] and meta["origin"]["format"] == "torchscript"
    x = torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)
    assert _no_leftovers(tmp_path)


def test_a_gradcheck_file_is_brought_with_its_own_weights(assets, tmp_path):
    out = tmp_path / "nonrobust.pt"
    result = bring_classifier(assets / "gradcheck.pt", out, tmp_path / "r.json", assets / "data.npz", "nonrobust",
                              T, True)
    assert result["format"] == "gradcheck" and result["architecture"] == "mobilenet_v3_small"
    original, _ = load_classifier(assets / "gradcheck.pt")
    model, meta = load_classifier(out)
    assert meta["mode"] == "pretrained" and meta["origin"]["mode"] == "clean"
    assert meta["architecture"] == "mobilenet_v3_small"
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(model(x), original(x), rtol=0, atol=0)


def test_wrong_class_count_is_named(assets):
    with pytest.raises(ValueError) as err:
        check_classifier_file(assets / "three.ts", CLASSES, SIZE, "robust")
    assert str(assets / "three.ts") in str(err.value)
    assert "gives 3 logits but the data set has 4 classes (basketball, soccer, tennis, baseball)" in str(err.value)
    digits = [str(d) for d in range(10)]
    with pytest.raises(ValueError, match=r"has 10 classes \(0, 1, \.\.\., 9\)"):
        check_classifier_file(assets / "tiny.ts", digits, SIZE, "robust")


def test_a_gradcheck_file_must_name_the_data_sets_classes_and_size(assets, tmp_path):
    swapped = (CLASSES[1], CLASSES[0], *CLASSES[2:])
    save_classifier(tmp_path / "swapped.pt", build_classifier(4).eval(), swapped, SIZE, "clean")
    with pytest.raises(ValueError, match="knows the classes") as err:
        check_classifier_file(tmp_path / "swapped.pt", CLASSES, SIZE, "robust")
    assert str(tmp_path / "swapped.pt") in str(err.value)
    with pytest.raises(ValueError, match=r"trained on 8 px images but the data set's are 16 px") as err:
        check_classifier_file(assets / "gradcheck.pt", CLASSES, 16, "robust")
    assert str(assets / "gradcheck.pt") in str(err.value)


def test_files_in_neither_format_are_named(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    torch.save(TinyNet().state_dict(), tmp_path / "state_dict.pt")  # weights without an architecture
    for name in ("junk.pt", "state_dict.pt"):
        with pytest.raises(ValueError, match="neither TorchScript") as err:
            check_classifier_file(tmp_path / name, CLASSES, SIZE, "robust")
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(ValueError, match="not found"):
        check_classifier_file(tmp_path / "missing.pt", CLASSES, SIZE, "robust")


def test_a_classifier_that_fails_on_the_images_is_named(tmp_path):
    class FixedSize(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 32 * 32, 4)

        def forward(self, x):
            return self.fc(x.flatten(1))

    torch.jit.save(_script(FixedSize()), str(tmp_path / "fixed.pt"))
    with pytest.raises(ValueError, match="fails on a batch of 2 RGB images of 8x8 px") as err:
        check_classifier_file(tmp_path / "fixed.pt", CLASSES, SIZE, "robust")
    assert str(tmp_path / "fixed.pt") in str(err.value)


def test_a_scripted_torchvision_feature_network_gives_its_pooled_features(assets, tmp_path):
    info = check_classifier_file(assets / "judge.pt", CLASSES, SIZE, "features")
    assert info["format"] == "torchscript" and info["features"] == 576 and info["architecture"] == "MobileNetV3"
    bring_classifier(assets / "judge.pt", tmp_path / "judge.pt", tmp_path / "judge.json", assets / "data.npz",
                     "features", T, True)
    model, _ = load_classifier(tmp_path / "judge.pt")
    features = PooledClassifierFeatures(model)
    assert features.num_features == 576 and features.architecture == "mobilenetv3"
    eager = mobilenet_v3_small(num_classes=4).eval()
    eager.load_state_dict(torch.jit.load(str(assets / "judge.pt")).state_dict())
    body, width = pooled_feature_extractor(eager)
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(features.body(x), body(x))
    assert not model.training  # measuring the feature width left the model as it was


def test_a_traced_feature_network_gives_its_pooled_features_too(assets, tmp_path):
    torch.manual_seed(0)
    eager = shufflenet_v2_x0_5(num_classes=4).eval()
    torch.jit.save(torch.jit.trace(eager, torch.zeros(1, 3, SIZE, SIZE)), str(tmp_path / "traced.pt"))
    assert check_classifier_file(tmp_path / "traced.pt", CLASSES, SIZE, "features")["features"] == 1024
    traced = torch.jit.load(str(tmp_path / "traced.pt"))
    body, width = pooled_feature_extractor(traced)  # a traced module keeps no in_features: measured
    assert width == 1024 and not traced.training
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(body(x), pooled_feature_extractor(eager)[0](x))


def test_trained_classifiers_keep_their_metadata_and_feature_names(assets):
    assert load_classifier(assets / "gradcheck.pt")[1] == {"classes": list(CLASSES), "image_size": SIZE,
                                                           "mode": "clean", "architecture": "mobilenet_v3_small"}
    for architecture, name, width in (("mobilenet_v3_small", "mobilenetv3", 576),
                                      ("shufflenet_v2_x0_5", "shufflenetv2", 1024)):
        features = PooledClassifierFeatures(build_classifier(4, architecture))
        assert (features.architecture, features.num_features) == (name, width)


def test_a_feature_network_without_known_features_is_refused(assets):
    check_classifier_file(assets / "tiny.ts", CLASSES, SIZE, "robust")  # fine as a guide
    with pytest.raises(ValueError, match="FID and KID use its pooled features") as err:
        check_classifier_file(assets / "tiny.ts", CLASSES, SIZE, "features")
    assert str(assets / "tiny.ts") in str(err.value) and "format (b)" in str(err.value)


# --- the command line -----------------------------------------------------------------------


def test_bring_ddpm_command(assets, tmp_path, caplog):
    out = tmp_path / "ddpm"
    args = ["bring-ddpm", "--pipeline", str(assets / "ddpm"), "--out", str(out), "--image-size", str(SIZE),
            "--timesteps", str(T), "--scale-betas", "true"]
    assert cli(*args) == 0
    assert json.loads((out / PRETRAINED_JSON).read_text())["sha256"] == content_hash(assets / "ddpm")
    bad = args[:-1] + ["false"]
    bad[bad.index("--out") + 1] = str(tmp_path / "other")
    assert cli(*bad) == 2
    assert "set ddpm.scale_betas: true" in caplog.text and not (tmp_path / "other").exists()


def test_bring_classifier_command_and_its_report_in_the_classifier_figure(assets, tmp_path, caplog):
    out, report = tmp_path / "robust.pt", tmp_path / "robust.json"
    args = ["bring-classifier", "--file", str(assets / "tiny.ts"), "--role", "robust", "--data",
            str(assets / "data.npz"), "--out", str(out), "--report", str(report), "--timesteps", str(T),
            "--scale-betas", "true", "--device", "cpu"]
    assert cli(*args) == 0
    assert load_classifier(out)[1]["mode"] == "pretrained"
    trained = tmp_path / "judge.json"
    trained.write_text(json.dumps({"mode": "clean", "clean_accuracy": 0.9, "noisy_accuracy": 0.5, "best_epoch": 3,
                                   "epochs_run": 8, "parameters": 100}))
    csv = tmp_path / "classifiers.csv"
    assert cli("figure-classifiers", "--report", f"robust={report}", f"judge={trained}", "--figure",
               tmp_path / "c.png", "--csv", csv) == 0
    rows = csv.read_text().splitlines()
    assert rows[1].startswith("robust,pretrained,") and rows[1].split(",")[4:6] == ["", "0"]
    assert rows[2].split(",")[4:6] == ["3", "8"]
    bad = args.copy()
    bad[bad.index("--file") + 1] = str(assets / "three.ts")
    bad[bad.index("--out") + 1] = str(tmp_path / "bad.pt")
    assert cli(*bad) == 2
    assert "gives 3 logits but the data set has 4 classes" in caplog.text and not (tmp_path / "bad.pt").exists()


def test_brought_models_guide_sampling(assets, tmp_path):
    ddpm, robust, judge = tmp_path / "ddpm", tmp_path / "robust.pt", tmp_path / "judge.pt"
    bring_ddpm(assets / "ddpm", ddpm, SIZE, T, True)
    bring_classifier(assets / "tiny.ts", robust, tmp_path / "robust.json", assets / "data.npz", "robust", T, True)
    bring_classifier(assets / "judge.pt", judge, tmp_path / "judge.json", assets / "data.npz", "judge", T, True)
    out = tmp_path / "cell.npz"
    assert cli("sample", "--ddpm", ddpm, "--classifier", robust, "--judge", judge, "--target", CLASSES[1],
               "--scale", 2, "--x0-hat", "true", "--stabiliser", "adam", "--num-samples", 2, "--seeds", 0,
               "--steps", 3, "--judge-every", 1, "--out", out, "--device", "cpu") == 0
    with np.load(out) as cell:
        assert cell["images"].shape == (2, SIZE, SIZE, 3)
        assert np.isfinite(cell["grad_norm"]).all() and (cell["grad_norm"] > 0).all()  # TorchScript gradients
        assert np.isfinite(cell["judge_confidence"]).all()


def test_ddpm_quality_of_a_brought_ddpm_is_one_point(assets, tmp_path):
    ddpm, judge = tmp_path / "ddpm", tmp_path / "judge.pt"
    bring_ddpm(assets / "ddpm", ddpm, SIZE, T, True)
    bring_classifier(assets / "judge.pt", judge, tmp_path / "judge.json", assets / "data.npz", "judge", T, True)
    csv, figure = tmp_path / "quality.csv", tmp_path / "quality.png"
    assert cli("ddpm-quality", "--ddpm", ddpm, "--judge", judge, "--data", assets / "data.npz", "--seeds", 0, 1,
               "--num-samples", 2, "--steps", 3, "--real-draws", 2, "--csv", csv, "--figure", figure,
               "--device", "cpu") == 0
    frame = pd.read_csv(csv)
    assert len(frame) == 1 and frame["step"].isna().all() and frame["final"].tolist() == [True]
    assert frame["features"].iloc[0].endswith("mobilenetv3-pool-576")
    np.testing.assert_allclose(frame[[f"share_{c}" for c in CLASSES]].sum(axis=1), 1.0)
    assert figure.stat().st_size > 0 and _no_leftovers(tmp_path)


# --- the run record -------------------------------------------------------------------------


def test_run_record_tells_trained_from_brought_models(assets, tmp_path):
    brought_ddpm, brought_clf = tmp_path / "ddpm", tmp_path / "robust.pt"
    bring_ddpm(assets / "ddpm", brought_ddpm, SIZE, T, True)
    bring_classifier(assets / "tiny.ts", brought_clf, tmp_path / "robust.json", assets / "data.npz", "robust", T,
                     True)
    models = {"ddpm": brought_ddpm, "robust": brought_clf, "trained_ddpm": assets / "ddpm",
              "judge": assets / "gradcheck.pt"}
    out = tmp_path / "run_record.json"
    assert cli("record", "--config-json", "{}", "--repo", tmp_path, "--out", out, "--jobs", brought_ddpm,
               tmp_path / "robust.json", "--models", *(f"{name}={path}" for name, path in models.items())) == 0
    record = json.loads(out.read_text())
    assert record["models"] == run_record({}, tmp_path, [], models)["models"]
    m = record["models"]
    assert m["ddpm"] == {"path": str(brought_ddpm), "sha256": content_hash(brought_ddpm), "origin": "brought",
                         "source": str((assets / "ddpm").absolute()), "source_sha256": content_hash(assets / "ddpm")}
    assert m["ddpm"]["sha256"] != m["ddpm"]["source_sha256"]  # the copy holds pretrained.json as well
    assert m["robust"] == {"path": str(brought_clf), "sha256": content_hash(brought_clf), "origin": "brought",
                           "source": str((assets / "tiny.ts").absolute()),
                           "source_sha256": content_hash(assets / "tiny.ts")}
    assert m["trained_ddpm"] == {"path": str(assets / "ddpm"), "sha256": content_hash(assets / "ddpm"),
                                 "origin": "trained"}
    assert m["judge"] == {"path": str(assets / "gradcheck.pt"), "sha256": content_hash(assets / "gradcheck.pt"),
                          "origin": "trained"}
    assert record["jobs"][str(brought_ddpm / PRETRAINED_JSON)]["device"] == "cpu"
    assert record["jobs"][str(tmp_path / "robust.json")]["device"] == "cpu"
    with pytest.raises(ValueError, match="neither a DDPM directory nor a classifier file"):
        model_record(assets / "data.npz")
    assert cli("record", "--config-json", "{}", "--out", out, "--models", "ddpm") == 2
