"""Bring your own models: a diffusers pipeline directory and TorchScript / GradCheck classifier files
replace training in the workflow, are checked before any job, and sample exactly as through the API."""

import json

import numpy as np
import pytest
import torch
import yaml
from diffusers import DDPMPipeline

from conftest import TINY, snakemake, tiny_unet
from gradcheck.classifier import build_classifier, load_classifier, save_classifier
from gradcheck.data import CLASSES
from gradcheck.ddpm import build_scheduler
from gradcheck.guidance import GuidanceSettings, per_sample_seeds, sample_seeds
from gradcheck.metrics import uint8_images
from gradcheck.pretrained import content_hash
from test_workflow import planned_rules

pytestmark = pytest.mark.e2e

TINY_CFG = yaml.safe_load(TINY.read_text())  # 16 px, T = 50 with scaled betas, 4 SportBalls classes


class SmallGuide(torch.nn.Module):
    """A user's own classifier: any module mapping [-1, 1] images to logits."""

    def __init__(self, classes: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = torch.nn.Linear(8, classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def bring(tmp_path, *, classes=len(CLASSES), sample_size=16):
    """A pipeline directory, a TorchScript guide and GradCheck-format judge and feature network, as a user
    would have them."""
    unet = tiny_unet(sample_size, seed=5)
    DDPMPipeline(unet=unet, scheduler=build_scheduler(TINY_CFG["ddpm"]["timesteps"], True)).save_pretrained(
        tmp_path / "pipeline")
    torch.manual_seed(6)
    torch.jit.save(torch.jit.script(SmallGuide(classes).eval()), tmp_path / "guide.pt")
    torch.manual_seed(7)
    judge = build_classifier(len(CLASSES), "shufflenet_v2_x0_5").eval()
    save_classifier(tmp_path / "judge.pt", judge, CLASSES, 16, "clean", "shufflenet_v2_x0_5")
    features = build_classifier(len(CLASSES), "resnet18").eval()
    save_classifier(tmp_path / "features.pt", features, CLASSES, 16, "clean", "resnet18")
    overlay = {
        "ddpm": {"pretrained": str(tmp_path / "pipeline")},
        "classifiers": {"robust": {"pretrained": str(tmp_path / "guide.pt")},
                        "nonrobust": {"pretrained": str(tmp_path / "guide.pt")},
                        "judge": {"pretrained": str(tmp_path / "judge.pt")},
                        "features": {"pretrained": str(tmp_path / "features.pt")}},
        # one Table 1 cell and the unguided ablation cell: enough to run every rule
        "grid": {"classifiers": ["nonrobust"], "x0": [True], "stabilisers": ["adam"], "scale": 5},
        "ablation": {"scales": [0]},
        "sensitivity": None,
    }
    path = tmp_path / "brought.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return [TINY, path]


def test_brought_models_replace_training_and_sample_as_the_python_api(tmp_path):
    configs = bring(tmp_path)
    work = tmp_path / "work"
    plan = planned_rules(snakemake(work, "-n", configfile=configs))
    assert {"bring_ddpm", "bring_classifier"} <= plan and not {"train_ddpm", "train_classifier"} & plan
    snakemake(work, "--cores", "2", "--resources", "gpu=1", configfile=configs)
    results = work / "results"
    assert not list((results / "logs").glob("train_*"))  # nothing was trained

    # the same models, straight from the user's files, through the Python API
    pipe = DDPMPipeline.from_pretrained(tmp_path / "pipeline")
    guide = torch.jit.load(str(tmp_path / "guide.pt"))
    threads = torch.get_num_threads()
    judge = load_classifier(tmp_path / "judge.pt")[0]
    sampling = TINY_CFG["sampling"]
    guidance = {k: v for k, v in TINY_CFG["guidance"].items() if k != "unet_dtype"}  # the tiny run's, as the rule passes them
    settings = GuidanceSettings(scale=5, target=CLASSES.index(sampling["target"]), x0_hat=True, stabiliser="adam",
                                **guidance)
    torch.set_num_threads(1)  # as the job ran (tiny.yaml's threads_per_job): float32 reductions depend on it
    images, _ = sample_seeds(per_sample_seeds(sampling["seeds"], sampling["num_samples"]), pipe.unet, pipe.scheduler,
                             guide, settings, sampling["batch_size"], sampling["steps"], "cpu", progress=False,
                             judge=judge, judge_every=sampling["judge_every"],
                             reference=torch.jit.load(str(tmp_path / "guide.pt")))  # the job's reference: the robust role
    torch.set_num_threads(threads)
    cell = np.load(results / "samples/nonrobust/x0-true_adam_s-5.npz")
    np.testing.assert_array_equal(cell["images"], uint8_images(images))

    record = json.loads((results / "run_record.json").read_text())["models"]
    assert record["ddpm"]["origin"] == "brought" and record["judge"]["origin"] == "brought"
    assert record["features"]["origin"] == "brought"
    assert record["ddpm"]["source_sha256"] == content_hash(tmp_path / "pipeline")
    assert record["nonrobust"]["source_sha256"] == content_hash(tmp_path / "guide.pt")
    report = json.loads((results / "models/nonrobust.json").read_text())
    assert report["mode"] == "pretrained" and 0 <= report["clean_accuracy"] <= 1
    assert planned_rules(snakemake(work, "-n", configfile=configs)) == set()


@pytest.mark.parametrize("mismatch, message", [
    ({"sample_size": 8}, "ddpm.pretrained: DDPM pipeline {path}: its UNet makes 8x8 px images "
                         "(unet/config.json sample_size) but data.image_size is 16"),
    ({"classes": 3}, "classifiers.robust.pretrained: classifier {path} gives 3 logits "  # the first one checked
                     "but the data set has 4 classes (basketball, soccer, tennis, baseball)"),
])
def test_a_mismatched_model_stops_the_run_before_any_job_naming_it(tmp_path, mismatch, message):
    configs = bring(tmp_path, **mismatch)
    proc = snakemake(tmp_path / "work", "-n", configfile=configs, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and planned_rules(proc) == set()
    offending = tmp_path / ("pipeline" if "sample_size" in mismatch else "guide.pt")
    assert "config: " + message.format(path=offending) in out
