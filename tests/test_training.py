import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline

from gradcheck.checkpoint import CheckpointError
from gradcheck.classifier import ClassifierTrainConfig, load_classifier, save_classifier, train_classifier
from gradcheck.data import CLASSES, build_dataset, images_to_tensor
from gradcheck.ddpm import DDPMTrainConfig, UNetConfig, build_scheduler, load_pipeline, train_ddpm

SMALL_UNET = UNetConfig(block_out_channels=(32, 32), layers_per_block=1, attention=(False, False))


@pytest.fixture(scope="module")
def data():
    return build_dataset(24, 8, size=16, seed=3)


def _cfg(**kw):
    base = dict(unet=SMALL_UNET, num_train_timesteps=50, steps=6, batch_size=8, lr=2e-3, checkpoint_every=3, seed=1)
    return DDPMTrainConfig(**{**base, **kw})


def test_ddpm_loss_falls_and_pipeline_loads(tmp_path, data):
    images = images_to_tensor(data["train_images"])
    losses = train_ddpm(images, tmp_path / "ddpm", _cfg(steps=60, checkpoint_every=30), torch.device("cpu"),
                        tmp_path / "work")
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
    pipe = DDPMPipeline.from_pretrained(tmp_path / "ddpm")  # diffusers' own loader
    assert pipe.unet.config.sample_size == 16 and pipe.scheduler.config.num_train_timesteps == 50


def test_resumed_training_continues_where_it_stopped(tmp_path, data):
    images = images_to_tensor(data["train_images"])
    cpu = torch.device("cpu")
    straight = train_ddpm(images, tmp_path / "a", _cfg(), cpu, tmp_path / "wa")
    first = train_ddpm(images, tmp_path / "b", _cfg(), cpu, tmp_path / "wb", stop_after=3)
    assert not (tmp_path / "b").exists()  # interrupted: no final model
    second = train_ddpm(images, tmp_path / "b", _cfg(), cpu, tmp_path / "wb")
    assert len(first) == 3 and len(second) == 3
    np.testing.assert_allclose(first + second, straight, rtol=1e-6)
    a, _ = load_pipeline(tmp_path / "a")
    b, _ = load_pipeline(tmp_path / "b")
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_a_checkpoint_of_other_settings_or_data_is_not_resumed(tmp_path, data):
    images = images_to_tensor(data["train_images"])
    cpu = torch.device("cpu")
    train_ddpm(images, tmp_path / "m", _cfg(), cpu, tmp_path / "w", stop_after=3)
    other_lr = train_ddpm(images, tmp_path / "m", _cfg(lr=1e-4), cpu, tmp_path / "w")
    assert len(other_lr) == 6  # started afresh, all six steps
    train_ddpm(images, tmp_path / "n", _cfg(), cpu, tmp_path / "v", stop_after=3)
    other_data = train_ddpm(images.flip(0), tmp_path / "n", _cfg(), cpu, tmp_path / "v")
    assert len(other_data) == 6
    assert not (tmp_path / "v" / "last.pt").exists()  # removed once the model is saved


def test_non_positive_settings_are_rejected():
    with pytest.raises(ValueError, match="steps must be positive"):
        _cfg(steps=0)
    with pytest.raises(ValueError, match="one flag per level"):
        UNetConfig(block_out_channels=(32, 64), attention=(False,))


def test_classifier_learns_and_reports_both_accuracies(tmp_path, data):
    scheduler = build_scheduler(50)
    x, y = images_to_tensor(data["train_images"]), torch.as_tensor(data["train_labels"])
    xv, yv = images_to_tensor(data["val_images"]), torch.as_tensor(data["val_labels"])
    cfg = ClassifierTrainConfig(mode="noisy", epochs=4, batch_size=16, patience=10, seed=0)
    model, report = train_classifier(x, y, xv, yv, scheduler, cfg, 4, torch.device("cpu"))
    assert report["history"][-1]["loss"] < report["history"][0]["loss"]
    assert report["monitor"] == "noisy_accuracy" and 0 <= report["noisy_accuracy"] <= 1
    save_classifier(tmp_path / "c.pt", model, ("a", "b", "c", "d"), 16, "noisy")
    loaded, meta = load_classifier(tmp_path / "c.pt")
    assert meta == {"classes": ["a", "b", "c", "d"], "image_size": 16, "mode": "noisy",
                    "architecture": "mobilenet_v3_small"}
    torch.testing.assert_close(loaded(xv[:4]), model.eval()(xv[:4]))


def test_corrupt_classifier_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt is corrupt"):
        load_classifier(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "missing.pt")


@pytest.mark.parametrize("architecture", ["mobilenet_v3_small", "shufflenet_v2_x0_5"])
def test_clean_classifier_is_accurate_in_eval_mode(architecture, tmp_path):
    """Guards the BatchNorm recalibration: without it, eval-mode MobileNetV3 collapses to one class.
    The judge's ShuffleNetV2 must learn as well, and load back as itself."""
    data = build_dataset(100, 25, size=16, seed=3)
    scheduler = build_scheduler(50)
    x, y = images_to_tensor(data["train_images"]), torch.as_tensor(data["train_labels"])
    xv, yv = images_to_tensor(data["val_images"]), torch.as_tensor(data["val_labels"])
    cfg = ClassifierTrainConfig(mode="clean", epochs=8, batch_size=32, lr=5e-3, patience=10, seed=0,
                                architecture=architecture)
    model, report = train_classifier(x, y, xv, yv, scheduler, cfg, 4, torch.device("cpu"))
    assert report["clean_accuracy"] >= 0.9 and report["architecture"] == architecture
    assert not model.training
    save_classifier(tmp_path / "c.pt", model, CLASSES, 16, "clean", architecture)
    loaded, meta = load_classifier(tmp_path / "c.pt")
    assert meta["architecture"] == architecture
    torch.testing.assert_close(loaded(xv[:4]), model(xv[:4]))
