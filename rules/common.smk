# Config validation, the sampling grid and the helpers shared by every rule file.
import itertools
import json
import subprocess

from snakemake.utils import validate


validate(config, "../configs/schema.yaml")


def _check_config(cfg):
    """Cross-key checks that a JSON schema cannot express; each names the keys involved."""
    ddpm = cfg["ddpm"]
    if len(ddpm["attention"]) != len(ddpm["block_out_channels"]):
        raise ValueError(
            f"config: ddpm.attention has {len(ddpm['attention'])} entries but "
            f"ddpm.block_out_channels has {len(ddpm['block_out_channels'])}; give one per level"
        )
    if cfg["sampling"]["steps"] > ddpm["timesteps"]:
        raise ValueError(
            f"config: sampling.steps ({cfg['sampling']['steps']}) exceeds ddpm.timesteps ({ddpm['timesteps']})"
        )
    fid_n = cfg["metrics"].get("fid_n") or cfg["sampling"]["num_samples"]
    if fid_n > cfg["sampling"]["num_samples"]:
        raise ValueError(f"config: metrics.fid_n ({fid_n}) exceeds sampling.num_samples")
    n_seeds = len(cfg["sampling"]["seeds"])
    if fid_n * n_seeds > cfg["data"]["train_per_class"]:
        raise ValueError(
            f"config: metrics.fid_n ({fid_n}) x {n_seeds} sampling.seeds exceeds data.train_per_class "
            f"({cfg['data']['train_per_class']}): every seed needs its own real images"
        )
    metrics = cfg["metrics"]
    if metrics["fid_features"] == "inception" and not metrics.get("inception_weights"):
        raise ValueError("config: metrics.fid_features is 'inception' but metrics.inception_weights is not set")


_check_config(config)

ENV = "../envs/gradcheck.yaml"
# Every job passes these to the CLI: torch ignores Snakemake's OMP_NUM_THREADS=threads,
# which `--cores 1` would cap at one core (0 = every core the job may use).
RUNTIME = {"device": config.get("device", "auto"), "threads": config.get("threads_per_job", 0)}
GIT_COMMIT = subprocess.run(
    ["git", "-C", workflow.basedir, "rev-parse", "HEAD"], capture_output=True, text=True
).stdout.strip()
CELL = "{classifier}/x0-{x0}_{stabiliser}_s-{scale}"
CELL_NAME = "{classifier}_x0-{x0}_{stabiliser}_s-{scale}"


wildcard_constraints:
    classifier="robust|nonrobust",
    model="robust|nonrobust|judge",
    x0="true|false",
    stabiliser=r"none|adam|ema0\.[0-9]+",
    quantity="grad_norm|eps_cosine|judge_confidence",
    scale=r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?",


def fmt_scale(scale):
    """One spelling per scale (10, 10.0 and 1e1 are the same cell)."""
    return f"{float(scale):g}"


def fmt_bool(value):
    return "true" if value else "false"


def cells(section):
    """(classifier, x0, stabiliser, scale) of every cell of config[section] ('grid' or 'ablation')."""
    spec = config[section]
    scales = [spec["scale"]] if section == "grid" else spec["scales"]
    return [
        dict(classifier=c, x0=fmt_bool(x), stabiliser=st, scale=fmt_scale(s))
        for c, x, st, s in itertools.product(spec["classifiers"], spec["x0"], spec["stabilisers"], scales)
    ]


def cell_paths(pattern, section, classifier=None):
    """``pattern`` filled in for every cell of a section (optionally one classifier's)."""
    return [pattern.format(**c) for c in cells(section) if classifier in (None, c["classifier"])]


def all_cells():
    unique = {tuple(c.values()): c for c in cells("grid") + cells("ablation")}
    return list(unique.values())


def cli_flags(**options):
    """Render keyword options as CLI flags: lists space-separated, booleans as true/false.

    Sorted, so that reordering keys in a config file leaves the params, and so the
    outputs, up to date.
    """
    parts = []
    for key, value in sorted(options.items()):
        values = value if isinstance(value, (list, tuple)) else [value]
        rendered = " ".join(fmt_bool(v) if isinstance(v, bool) else str(v) for v in values)
        parts.append(f"--{key.replace('_', '-')} {rendered}")
    return " ".join(parts)


def fid_options(wildcards):
    metrics = config["metrics"]
    if metrics["fid_features"] == "inception":
        return f"--features inception --inception-weights {metrics['inception_weights']}"
    return "--features sportballs --feature-classifier results/models/judge.pt"


def all_outputs():
    outputs = [
        "results/table1.csv",
        "results/table1.md",
        "results/table1.tex",
        "results/findings.md",
        "results/classifiers.csv",
        "results/figures/classifiers.png",
        "results/figures/sportballs.png",
        "results/figures/cosine_baseline.png",
        "results/scale_ablation.csv",
        "results/figures/scale_ablation.png",
        "results/run_record.json",
    ]
    outputs += expand("results/figures/trace_{quantity}.png", quantity=TRACE_QUANTITIES)
    outputs += expand("results/figures/cosine_{classifier}.png", classifier=config["grid"]["classifiers"])
    outputs += expand("results/figures/samples_{classifier}.png", classifier=config["grid"]["classifiers"])
    outputs += [f"results/figures/grids/{CELL_NAME}.png".format(**c) for c in all_cells()]
    return outputs
