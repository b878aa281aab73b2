import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline

from gradcheck.checkpoint import CheckpointError
from gradcheck.classifier import ClassifierTrainConfig, load_classifier, save_classifier, train_classifier
from gradcheck.data import CLASSES, build_dataset, images_to_tensor
from gradcheck.data_parallel import run_ranks
from gradcheck.ddpm import (DDPMTrainConfig, UNetConfig, _training_step, build_scheduler, build_unet, load_pipeline,
                            load_snapshot, loss_weights, snapshot_steps, train_ddpm)

SMALL_UNET = UNetConfig(block_out_channels=(32, 32), layers_per_block=1, attention=(False, False), norm_num_groups=32,
                        mid_attention=True)


@pytest.fixture(scope="module")
def data():
    return build_dataset(24, 8, size=16, seed=3)


def _cfg(**kw):
    # a plain recipe (no warm-up, constant rate, float32), not the default run's, whose 100 warm-up steps
    # outlast these tests' 6 to 60
    base = dict(unet=SMALL_UNET, num_train_timesteps=50, scale_betas=False, steps=6, batch_size=8, lr=2e-3,
                warmup_steps=0, lr_schedule="constant", grad_clip=None, precision="float32", snapshot_every=0,
                checkpoint_every=3, seed=1)
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


def test_resuming_a_run_with_warm_up_decay_clipping_and_snapshots_changes_nothing(tmp_path, data):
    images = images_to_tensor(data["train_images"])
    cpu = torch.device("cpu")
    cfg = _cfg(steps=8, checkpoint_every=2, snapshot_every=3, warmup_steps=2, lr_schedule="cosine", grad_clip=0.5,
               loss_weighting="min_snr")
    straight = train_ddpm(images, tmp_path / "a", cfg, cpu, tmp_path / "wa")
    first = train_ddpm(images, tmp_path / "b", cfg, cpu, tmp_path / "wb", stop_after=4)
    second = train_ddpm(images, tmp_path / "b", cfg, cpu, tmp_path / "wb")
    np.testing.assert_allclose(first + second, straight, rtol=1e-6)
    assert list(snapshot_steps(tmp_path / "a")) == list(snapshot_steps(tmp_path / "b")) == [3, 6]
    for step, path in snapshot_steps(tmp_path / "a").items():
        a, _ = load_pipeline(tmp_path / "a")
        b, _ = load_pipeline(tmp_path / "b")
        load_snapshot(a, path), load_snapshot(b, snapshot_steps(tmp_path / "b")[step])
        for pa, pb in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(pa, pb)
    assert not (tmp_path / "wa" / "snapshots").exists()  # moved into the model directory


def test_a_snapshot_holds_the_weights_a_run_of_that_length_ends_with(tmp_path, data):
    """Snapshot k of a long run = the final sampling weights of the same run stopped at k (constant lr)."""
    images = images_to_tensor(data["train_images"])
    cpu = torch.device("cpu")
    train_ddpm(images, tmp_path / "long", _cfg(steps=6, snapshot_every=4), cpu, tmp_path / "wl")
    train_ddpm(images, tmp_path / "short", _cfg(steps=4), cpu, tmp_path / "ws")
    snap, _ = load_pipeline(tmp_path / "long")
    load_snapshot(snap, snapshot_steps(tmp_path / "long")[4])
    short, _ = load_pipeline(tmp_path / "short")
    for ps, pq in zip(snap.parameters(), short.parameters()):
        torch.testing.assert_close(ps, pq)
    assert DDPMPipeline.from_pretrained(tmp_path / "long").unet is not None  # snapshots/ does not disturb diffusers


def test_data_parallel_training_is_one_process_training_up_to_rounding_and_resumes_exactly(tmp_path, data):
    """Two processes split each batch and sum their gradients: the same steps as one process's, with
    warm-up, decay, clipping, min-SNR and EMA; an interrupted two-process run resumes bit for bit."""
    images = images_to_tensor(data["train_images"])
    cpu = torch.device("cpu")
    cfg = _cfg(warmup_steps=2, lr_schedule="cosine", grad_clip=0.5, loss_weighting="min_snr", ema_decay=0.9)
    one = train_ddpm(images, tmp_path / "one", cfg, cpu, tmp_path / "w1")
    two = train_ddpm(images, tmp_path / "two", replace(cfg, processes=2), cpu, tmp_path / "w2")
    np.testing.assert_allclose(two, one, rtol=1e-5)
    a, _ = load_pipeline(tmp_path / "one")
    b, _ = load_pipeline(tmp_path / "two")
    torch.manual_seed(cfg.seed)
    start = torch.cat([p.detach().flatten() for p in build_unet(cfg.unet, 16).parameters()])
    wa, wb = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (a, b))
    # AdamW steps a weight whose gradient is near 0 by up to lr on rounding: compare with how far training went
    assert (wb - wa).norm() < 0.01 * (wa - start).norm()
    assert not all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))  # really two processes
    assert json.loads((tmp_path / "two" / "training.json").read_text())["config"]["processes"] == 2

    first = train_ddpm(images, tmp_path / "resumed", replace(cfg, processes=2), cpu, tmp_path / "w3", stop_after=3)
    second = train_ddpm(images, tmp_path / "resumed", replace(cfg, processes=2), cpu, tmp_path / "w3")
    assert first + second == two
    c, _ = load_pipeline(tmp_path / "resumed")
    for pb, pc in zip(b.parameters(), c.parameters()):
        assert torch.equal(pb, pc)


def _one_sgd_step(rank, images, cfg):
    """One training step with SGD at lr 1: each weight moves by minus the (summed) gradient."""
    torch.manual_seed(cfg.seed)
    unet = build_unet(cfg.unet, images.shape[-1])
    before = [p.detach().clone() for p in unet.parameters()]
    optimizer = torch.optim.SGD(unet.parameters(), lr=1.0)
    constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    loss = _training_step(unet, optimizer, constant, None, build_scheduler(cfg.num_train_timesteps, cfg.scale_betas),
                          images, cfg, 0, torch.device("cpu"), rank)
    return loss, [b - p.detach() for b, p in zip(before, unet.parameters())]


def test_data_parallel_step_takes_the_whole_batchs_gradient():
    """The summed shares' gradient is the one-process batch mean's, scale included (Adam would hide a scale)."""
    images = images_to_tensor(build_dataset(6, 2, size=16, seed=4)["train_images"])
    cfg = _cfg(loss_weighting="min_snr")
    loss, gradient = run_ranks(1, _one_sgd_step, images, cfg)
    shared_loss, shared_gradient = run_ranks(2, _one_sgd_step, images, replace(cfg, processes=2))
    assert shared_loss == pytest.approx(loss, rel=1e-6)
    largest = max(g.abs().max().item() for g in gradient)
    for g, h in zip(gradient, shared_gradient):
        torch.testing.assert_close(h, g, rtol=1e-4, atol=1e-5 * largest)


def _fails_in_rank_1(rank):
    if rank == 1:
        raise ValueError("rank 1 fails")
    return "rank 0's result"


def test_a_failed_rank_fails_the_run_naming_it():
    with pytest.raises(RuntimeError, match=r"rank\(s\) failed with exit codes \{1: 1\}"):
        run_ranks(2, _fails_in_rank_1)
    assert run_ranks(1, _fails_in_rank_1) == "rank 0's result"


def test_data_parallel_processes_must_share_the_batch():
    with pytest.raises(ValueError, match=r"batch_size \(8\) must divide among the 3 processes"):
        _cfg(processes=3)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_learning_rate_follows_warm_up_and_its_schedule(tmp_path, data, schedule):
    images = images_to_tensor(data["train_images"])
    cfg = _cfg(steps=10, checkpoint_every=1, warmup_steps=4, lr_schedule=schedule, lr=1e-3)
    for k in range(1, 10):
        train_ddpm(images, tmp_path / "m", cfg, torch.device("cpu"), tmp_path / "w", stop_after=k)
        state = torch.load(tmp_path / "w" / "last.pt", weights_only=False)
        after = 0.5 * (1 + math.cos(math.pi * (k - 4) / 6)) if schedule == "cosine" else 1.0
        by_hand = 1e-3 * (k / 4 if k < 4 else after)
        assert state["lr_schedule"]["_last_lr"][0] == pytest.approx(by_hand)


def test_scaled_betas_reach_pure_noise_at_any_t():
    by_hand = np.cumprod(1 - np.linspace(1e-4 * 2.5, 0.02 * 2.5, 400))
    np.testing.assert_allclose(build_scheduler(400, scale_betas=True).alphas_cumprod.numpy(), by_hand, rtol=1e-4)
    assert build_scheduler(400).alphas_cumprod[-1] > 0.015  # unscaled: x_T keeps 13% of the image
    assert build_scheduler(400, scale_betas=True).alphas_cumprod[-1] < 1e-4
    torch.testing.assert_close(build_scheduler(1000, scale_betas=True).betas, build_scheduler(1000).betas)
    with pytest.raises(ValueError, match="scale_betas needs T above 20: at T = 20 the last beta would be 1"):
        build_scheduler(20, scale_betas=True)


def test_min_snr_weights_by_hand():
    scheduler = build_scheduler(100)
    t = torch.tensor([0, 10, 50, 99])
    abar = scheduler.alphas_cumprod[t]
    snr = abar / (1 - abar)
    cfg = _cfg(loss_weighting="min_snr", min_snr_gamma=5.0)
    torch.testing.assert_close(loss_weights(scheduler, t, cfg), torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert torch.equal(loss_weights(scheduler, t, _cfg()), torch.ones(4))


def test_bfloat16_training_stays_near_float32(tmp_path, data):
    images = images_to_tensor(data["train_images"])
    cpu = torch.device("cpu")
    fp32 = train_ddpm(images, tmp_path / "a", _cfg(steps=3), cpu, tmp_path / "wa")
    bf16 = train_ddpm(images, tmp_path / "b", _cfg(steps=3, precision="bfloat16"), cpu, tmp_path / "wb")
    # same batches and initial weights; bfloat16 keeps about 3 significant digits
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)
    assert bf16 != fp32  # the option does change the arithmetic


def test_unet_norm_groups_are_configurable_and_checked():
    from gradcheck.ddpm import build_unet

    unet = build_unet(UNetConfig((32, 64), 1, (False, False), norm_num_groups=8), 16)
    groups = {m.num_groups for m in unet.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups == {8}
    with pytest.raises(ValueError, match=r"levels of \[48\] channels, not divisible into norm_num_groups = 32"):
        UNetConfig((32, 48), 1, (False, False), norm_num_groups=32)


def test_mid_block_attention_can_be_left_out():
    from diffusers.models.attention_processor import Attention

    from gradcheck.ddpm import build_unet

    def attention_layers(cfg):
        return [m for m in build_unet(cfg, 16).modules() if isinstance(m, Attention)]

    assert len(attention_layers(UNetConfig((32, 64), 1, (False, False), norm_num_groups=8, mid_attention=True))) == 1
    assert attention_layers(UNetConfig((32, 64), 1, (False, False), norm_num_groups=8, mid_attention=False)) == []


def test_non_positive_settings_are_rejected():
    with pytest.raises(ValueError, match="steps must be positive"):
        _cfg(steps=0)
    with pytest.raises(ValueError, match="one flag per level"):
        UNetConfig(block_out_channels=(32, 64), attention=(False,))
    for bad, match in (({"lr_schedule": "linear"}, "unknown lr_schedule"), ({"precision": "float16"}, "precision"),
                       ({"loss_weighting": "snr"}, "loss_weighting"), ({"grad_clip": 0.0}, "grad_clip"),
                       ({"warmup_steps": -1}, "warmup_steps"), ({"ema_decay": 1.0}, "ema_decay")):
        with pytest.raises(ValueError, match=match):
            _cfg(**bad)


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
