import numpy as np
import pytest
import scipy.linalg
import torch

from gradcheck.checkpoint import CheckpointError
from gradcheck.classifier import build_classifier
from gradcheck.metrics import (PooledClassifierFeatures, feature_network, frechet_distance, image_features,
                               kernel_inception_distance)


class FlatFeatures(torch.nn.Module):
    """Images 2x2 px -> their 12 values as features: FID in a space we can compute by hand."""

    num_features = 12

    def forward(self, x):
        return x.flatten(1).double()


def _reference_fid(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_agrees_with_numpy_scipy():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (300, 2, 2, 3), dtype=np.uint8)
    fake = np.clip(rng.normal(150, 40, (300, 2, 2, 3)), 0, 255).astype(np.uint8)
    expected = _reference_fid(real.transpose(0, 3, 1, 2).reshape(300, -1).astype(float),
                              fake.transpose(0, 3, 1, 2).reshape(300, -1).astype(float))
    got = frechet_distance(real, fake, FlatFeatures())
    assert got == pytest.approx(expected, rel=1e-4)
    assert frechet_distance(real, real, FlatFeatures()) == pytest.approx(0.0, abs=1e-3)


def _reference_kid(f1, f2):
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, written out pair by pair."""
    m, d = len(f1), f1.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3
    xx = sum(k(f1[i], f1[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(f2[i], f2[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(f1[i], f2[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_through_torchmetrics_equals_direct_computation():
    rng = np.random.default_rng(2)
    real = rng.integers(0, 256, (40, 2, 2, 3), dtype=np.uint8)
    fake = np.clip(rng.normal(150, 40, (40, 2, 2, 3)), 0, 255).astype(np.uint8)
    flat = lambda x: x.transpose(0, 3, 1, 2).reshape(len(x), -1).astype(float)
    expected = _reference_kid(flat(real), flat(fake))
    assert kernel_inception_distance(real, fake, FlatFeatures()) == pytest.approx(expected, rel=1e-6)
    assert image_features(real, FlatFeatures()) == pytest.approx(flat(real))
    # the same value bit for bit whatever the global RNG state, which it leaves alone
    values = set()
    for seed in range(3):
        torch.manual_seed(seed)
        expected_next = torch.rand(1)
        torch.manual_seed(seed)
        values.add(kernel_inception_distance(real, fake, FlatFeatures()))
        assert torch.equal(torch.rand(1), expected_next)
    assert len(values) == 1
    with pytest.raises(ValueError, match="at least 2 images"):
        kernel_inception_distance(real[:1], fake[:1], FlatFeatures())


@pytest.mark.parametrize("architecture, name, width", [
    ("mobilenet_v3_small", "features-mobilenetv3-pool-576", 576),
    ("shufflenet_v2_x0_5", "features-shufflenetv2-pool-1024", 1024),
    ("resnet18", "features-resnet-pool-512", 512),
])
def test_classifier_features_are_named_and_pooled(architecture, name, width):
    clf = build_classifier(4, architecture).eval()
    net, got_name = feature_network("features", classifier=clf)
    assert got_name == name
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = net(images)
    assert out.shape == (2, width)
    # the features are what the classifier's own head reads: its logits follow from them
    head = clf.classifier if hasattr(clf, "classifier") else clf.fc
    torch.testing.assert_close(head(out), clf(images.float() / 127.5 - 1.0), rtol=1e-4, atol=1e-5)


def test_inception_without_weights_on_disk_fails_loudly(tmp_path):
    with pytest.raises(CheckpointError, match="need Inception-v3 weights on disk"):
        feature_network("inception", inception_weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown FID feature source"):
        feature_network("clip")


def test_inception_weights_are_loaded_from_disk(tmp_path, monkeypatch):
    """The real torchmetrics/torch-fidelity Inception path, with weights from a local file.

    No real Inception weights can be had here, so we write a randomly initialised state dict
    of the right architecture and check that FID loads it from the path and runs.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with monkeypatch.context() as m:  # build the architecture once without any download
        m.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(torch.nn.Module, "load_state_dict", lambda self, sd, *a, **k: None)
        arch = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / "inception.pth"
    torch.save(arch.state_dict(), weights)
    feature, name = feature_network("inception", inception_weights=weights)
    assert name == "inception-v3-pool3-2048"
    torch.testing.assert_close(feature.state_dict()["Conv2d_1a_3x3.conv.weight"],
                               arch.state_dict()["Conv2d_1a_3x3.conv.weight"])
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert np.isfinite(frechet_distance(imgs, imgs[::-1].copy(), feature))
    assert np.isfinite(kernel_inception_distance(imgs, imgs[::-1].copy(), feature))
