"""Stage 4, evaluation: one cell's metrics with intervals, and the unguided DDPM's own quality."""

from __future__ import annotations

import logging

from ..settings import FEATURE_SOURCES, UNET_DTYPES, MetricsSettings, SamplingSettings
from . import DEVICE_HELP, bootstrap_options, command, confidence, option, positive, steps

log = logging.getLogger("gradcheck")
METRICS, SAMPLING = MetricsSettings, SamplingSettings


@command("evaluate", help="accuracy (guide and judge), FID and KID of one cell, with bootstrap CIs")
@option("--samples", nargs="+", required=True,
        help=".npz from sample: one per training replicate of the cell, in replicate order")
@option("--classifier", nargs="+", required=True,
        help="the guiding classifier (.pt) of each replicate, in the same order (one: every replicate's)")
@option("--judge", required=True, help="the independent judge classifier (.pt), never guiding")
@option("--label", help="name of the guiding classifier in the table (default: file stem)")
@option("--data", required=True, help="data set .npz: the real target-class images")
@option("--n", type=positive, help="images per side and seed for FID and KID (default: samples per seed)")
@option("--features", choices=FEATURE_SOURCES, required=True,
        help="FID/KID features: Inception-v3 (weights on disk) or the pooled features of --feature-classifier")
@option("--inception-weights", help="torch-fidelity Inception-v3 weights (.pth)")
@option("--feature-classifier", help="classifier (.pt) whose pooled features FID and KID use")
@bootstrap_options("the intervals")
@option("--bootstrap-seed", type=int, default=0)
@option("--out", required=True, help="output JSON")
def evaluate(a):
    from ..atomic import write_json
    from ..evaluate import evaluate_cell

    row = evaluate_cell(a.samples, a.classifier, a.judge, a.data, features=a.features, label=a.label, n=a.n,
                        feature_classifier=a.feature_classifier, inception_weights=a.inception_weights,
                        n_boot=a.n_boot, confidence=a.confidence, bootstrap_seed=a.bootstrap_seed)
    write_json(a.out, row)
    log.info("%s: accuracy %.3f, judge %.3f, fooled %.3f, FID %.3f, KID %.4f (%s, %d replicates x %d seeds x n=%d)",
             row["samples"], row["accuracy"], row["judge_accuracy"], row["fooled"], row["fid"], row["kid"],
             row["features"], row["replicates"], row["seeds"], row["n"])


@command("ddpm-quality", help="class mix and FID of unguided samples, at every training snapshot")
@option("--ddpm", required=True,
        help="DDPMPipeline directory from train-ddpm (with snapshots/) or bring-ddpm (final weights only)")
@option("--judge", required=True, help="judge classifier (.pt): class mix and FID features")
@option("--data", required=True, help="data set .npz: real images of all classes")
@option("--seeds", type=int, nargs="+", setting=(SAMPLING, "seeds"), help="sampling seeds, as the cells use")
@option("--num-samples", type=positive, setting=(SAMPLING, "num_samples"), help="samples per sampling seed")
@option("--batch-size", type=positive, setting=(SAMPLING, "batch_size"), help="does not change float32 samples")
@option("--steps", type=steps, setting=(SAMPLING, "steps"), help="respaced sampling steps, or 'all' (default)")
@option("--unet-dtype", choices=UNET_DTYPES, setting=(SAMPLING, "unet_dtype"))
@option("--feature-classifier",
        help="classifier (.pt) whose pooled features the FID uses (default: the judge's, where FID's "
        "features are Inception's, which ddpm-quality does not load)")
@option("--real-draws", type=positive, default=5, help="random draws of the real sets that both FIDs are averaged over")
@option("--confidence", type=confidence, setting=(METRICS, "confidence"),
        help="confidence level of the class shares' intervals")
@option("--csv", required=True, help="output CSV: one row per snapshot and the final weights")
@option("--figure", help="output PNG: FID ratio and class mix against training step")
@option("--device", default="auto", help=DEVICE_HELP)
def ddpm_quality(a):
    from ..atomic import atomic_path
    from ..device import pick_device
    from ..plots import ddpm_quality_figure
    from ..quality import measure_ddpm

    frame = measure_ddpm(a.ddpm, a.judge, a.data, feature_classifier=a.feature_classifier, seeds=a.seeds,
                         num_samples=a.num_samples, batch_size=a.batch_size, steps=a.steps, unet_dtype=a.unet_dtype,
                         real_draws=a.real_draws, confidence=a.confidence, device=pick_device(a.device))
    with atomic_path(a.csv) as tmp:
        frame.to_csv(tmp, index=False)
    if a.figure:
        brought = frame["step"].isna().all()
        what = "brought DDPM (no training curve)" if brought else "unconditional DDPM over training"
        ddpm_quality_figure(frame, a.figure, f"{what}: {int(frame['samples'].iloc[0])} unguided samples "
                            f"at s = 0, judge features ({frame['features'].iloc[0]})")
