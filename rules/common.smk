# Config validation, the sampling grid and the helpers shared by every rule file.
import itertools
import json
import subprocess
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # gradcheck's readers check digits and folder data before any job


validate(config, "../configs/schema.yaml")


def data_class_counts(cfg):
    """class name -> (training, validation) images, in label order, known before any job runs:
    a bad folder stops the run here, naming the folder, the class or the file."""
    data = cfg["data"]
    if data["source"] == "sportballs":
        return {name: (data["train_per_class"], data["val_per_class"]) for name in data["classes"]}
    if data["source"] == "digits":
        from gradcheck.digits import digit_counts

        return digit_counts(data["val_fraction"])
    if not data.get("folder"):
        raise ValueError("config: data.source is 'folder' but data.folder is not set; give the image folder's path")
    from gradcheck.folder import scan_image_folder

    try:
        return scan_image_folder(data["folder"], data["val_fraction"])
    except ValueError as err:
        raise ValueError(f"config: data.folder: {err}") from None


def _check_config(cfg):
    """Cross-key checks that a JSON schema cannot express; each names the keys involved."""
    ddpm = cfg["ddpm"]
    if len(ddpm["attention"]) != len(ddpm["block_out_channels"]):
        raise ValueError(
            f"config: ddpm.attention has {len(ddpm['attention'])} entries but "
            f"ddpm.block_out_channels has {len(ddpm['block_out_channels'])}; give one per level"
        )
    # diffusers' UNet2DModel normalises with GroupNorm: a level of 16 channels in 32 groups fails inside training
    groups = ddpm["norm_num_groups"]
    odd = [c for c in ddpm["block_out_channels"] if c % groups]
    if odd:
        raise ValueError(
            f"config: ddpm.block_out_channels {ddpm['block_out_channels']} has levels of {odd} channels; "
            f"every level needs a multiple of ddpm.norm_num_groups ({groups})"
        )
    # each level but the last halves the image: the side must survive every halving
    levels, size = len(ddpm["block_out_channels"]), cfg["data"]["image_size"]
    if size % 2 ** (levels - 1):
        raise ValueError(
            f"config: ddpm.block_out_channels has {levels} levels, which halve the image {levels - 1} times, "
            f"but data.image_size ({size}) is not divisible by {2 ** (levels - 1)}"
        )
    for name, settings in study_settings_all(cfg).items():
        where = "" if name == "default" else f" in sensitivity variant {name!r}"
        if ddpm["scale_betas"] and settings["timesteps"] <= 20:  # the last beta, 0.02 x 1000 / T, reaches 1
            raise ValueError(f"config: ddpm.scale_betas needs ddpm.timesteps above 20, got {settings['timesteps']}{where}")
        steps = settings["steps"]
        if steps not in (None, "all") and steps > settings["timesteps"]:
            raise ValueError(
                f"config: sampling.steps ({steps}) exceeds ddpm.timesteps ({settings['timesteps']}){where}"
            )
    counts, target = data_class_counts(cfg), cfg["sampling"]["target"]
    if target not in counts:
        where = "data.classes" if cfg["data"]["source"] == "sportballs" else f"the {cfg['data']['source']} data's classes"
        raise ValueError(f"config: sampling.target {target!r} is not among {where} ({', '.join(counts)})")
    _check_brought_models(cfg, tuple(counts))
    fid_n = cfg["metrics"].get("fid_n") or cfg["sampling"]["num_samples"]
    if fid_n > cfg["sampling"]["num_samples"]:
        raise ValueError(f"config: metrics.fid_n ({fid_n}) exceeds sampling.num_samples")
    n_seeds, n_real = len(cfg["sampling"]["seeds"]), counts[target][0]
    if fid_n * n_seeds > n_real:
        have = ("data.train_per_class" if cfg["data"]["source"] == "sportballs"
                else f"the {n_real} training images of class {target!r}")
        raise ValueError(
            f"config: metrics.fid_n ({fid_n}) x {n_seeds} sampling.seeds exceeds {have} "
            f"({n_real}): every seed needs its own real images"
        )
    if sweep_variant(cfg) not in study_variants(cfg):
        raise ValueError(f"config: sensitivity.sweep.variant {sweep_variant(cfg)!r} is not a variant; "
                         f"choose one of {', '.join(study_variants(cfg))}")
    metrics = cfg["metrics"]
    if metrics["fid_features"] == "inception" and not metrics.get("inception_weights"):
        raise ValueError("config: metrics.fid_features is 'inception' but metrics.inception_weights is not set")


def brought(name, cfg=config):
    """The user's model that replaces training ``name`` ('ddpm', 'robust', 'nonrobust' or 'judge'), or None."""
    if name == "ddpm":
        return cfg["ddpm"].get("pretrained")
    return (cfg["classifiers"].get(name) or {}).get("pretrained")


NEVER = "(?!)"  # a wildcard pattern that matches nothing: the rule is off


def alternatives(patterns):
    return "|".join(patterns) if patterns else NEVER


def _check_brought_models(cfg, classes):
    """Brought models must fit the data and the schedule: checked here, before any job, naming the key."""
    size, timesteps = cfg["data"]["image_size"], cfg["ddpm"]["timesteps"]
    for name, settings in study_settings_all(cfg).items():
        changed = settings["timesteps"] != timesteps
        for model in ("ddpm", "robust"):
            if changed and brought(model, cfg):
                key = "ddpm.pretrained" if model == "ddpm" else "classifiers.robust.pretrained"
                raise ValueError(f"config: sensitivity variant {name!r} changes ddpm.timesteps to {settings['timesteps']}, "
                                 f"which needs a {model} trained for it, but {key} brings one for T = {timesteps}")
    if not any(brought(model, cfg) for model in ("ddpm", "robust", "nonrobust", "judge")):
        return
    from gradcheck.pretrained import check_classifier_file, check_ddpm_pipeline

    if brought("ddpm", cfg):
        try:
            check_ddpm_pipeline(brought("ddpm", cfg), size, timesteps, cfg["ddpm"]["scale_betas"])
        except ValueError as err:
            raise ValueError(f"config: ddpm.pretrained: {err}") from None
    for model in ("robust", "nonrobust", "judge"):
        if brought(model, cfg):
            try:  # role judge: its pooled features must be found (ddpm-quality's FID uses them always)
                check_classifier_file(brought(model, cfg), classes, size, model)
            except ValueError as err:
                raise ValueError(f"config: classifiers.{model}.pretrained: {err}") from None


def study_variants(cfg):
    """name -> the settings it changes: 'default' (none), the sensitivity variants, their combination."""
    study = cfg.get("sensitivity") or {"variants": {}}
    variants = {"default": {}, **study["variants"]}
    combined = study.get("combined")
    if combined:
        if combined in variants:
            raise ValueError(f"config: sensitivity.combined {combined!r} is also a variant's name")
        merged = {}
        for change in study["variants"].values():
            for section, keys in change.items():
                merged.setdefault(section, {}).update(keys)
        variants[combined] = merged
    return variants


def sweep_variant(cfg):
    """The variant whose settings the scale sweep uses: named, else the combined one, else 'default'."""
    study = cfg.get("sensitivity") or {}
    return (study.get("sweep") or {}).get("variant") or study.get("combined") or "default"


def study_settings_all(cfg):
    """name -> the settings of every variant: the config's, with the variant's changes made."""
    base = {"timesteps": cfg["ddpm"]["timesteps"], "steps": cfg["sampling"]["steps"], **cfg["guidance"]}
    # a variant's keys are unique across its sections: guidance.*, sampling.steps, ddpm.timesteps
    return {
        name: base | {k: v for section in change.values() for k, v in section.items()}
        for name, change in study_variants(cfg).items()
    }


_check_config(config)
STUDY_SETTINGS = study_settings_all(config)
# the data set file and its contact sheet, named after the source
DATA_NAME = {"sportballs": "sportballs", "digits": "digits", "folder": "images"}[config["data"]["source"]]
DATA = f"results/data/{DATA_NAME}.npz"
DATA_SHEET = f"results/figures/{DATA_NAME}.png"

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
    model="robust|nonrobust|judge|robust_T[0-9]+",
    ddpm=r"ddpm(_T[0-9]+)?",
    variant="[A-Za-z][A-Za-z0-9_.-]*",
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


def ddpm_path(timesteps):
    """The DDPM for T = timesteps: one training per T that the run asks for."""
    return "results/models/ddpm" if timesteps == config["ddpm"]["timesteps"] else f"results/models/ddpm_T{timesteps}"


def classifier_path(name, timesteps):
    """Only the robust classifier sees the noise schedule, so only it is trained once per T."""
    if name != "robust" or timesteps == config["ddpm"]["timesteps"]:
        return f"results/models/{name}.pt"
    return f"results/models/robust_T{timesteps}.pt"


def relevant_settings(cell, settings):
    """The settings that can change a cell's samples, as CLI options of `gradcheck sample`.

    Only these go into the job's params, so changing another key (clipping x0-hat, say, for a
    cell without x0-hat) reruns nothing, and a sensitivity variant that cannot affect a cell
    reuses the default's samples. Unguided cells depend on the DDPM's settings only.
    """
    steps = settings["steps"]
    options = {"steps": "all" if steps in (None, "all") else steps, "unet_dtype": settings["unet_dtype"]}
    if float(cell["scale"]) == 0:
        return options
    options |= {"objective": settings["objective"], "normalise": settings["normalise"]}
    if cell["x0"] == "true":
        options["clip_x0"] = settings["clip_x0"]
    if cell["stabiliser"] == "adam":
        options |= {"adam_eps": settings["adam_eps"], "bias_correction": settings["bias_correction"]}
    elif cell["stabiliser"] != "none" and not settings["normalise"]:
        options["bias_correction"] = settings["bias_correction"]  # eq. 2 cancels an EMA's correction
    return options


def sample_flags(cell, settings, num_samples, seeds):
    return cli_flags(
        target=config["sampling"]["target"],
        num_samples=num_samples,
        batch_size=config["sampling"]["batch_size"],
        judge_every=config["sampling"]["judge_every"],
        seeds=seeds,
        **relevant_settings(cell, settings),
    )


def fid_options(wildcards):
    metrics = config["metrics"]
    if metrics["fid_features"] == "inception":
        return f"--features inception --inception-weights {metrics['inception_weights']}"
    return f"--features {metrics['fid_features']} --feature-classifier results/models/judge.pt"


def all_outputs():
    outputs = [
        "results/table1.csv",
        "results/table1.md",
        "results/table1.tex",
        "results/findings.md",
        "results/classifiers.csv",
        "results/figures/classifiers.png",
        DATA_SHEET,
        "results/figures/cosine_baseline.png",
        "results/scale_ablation.csv",
        "results/ddpm.csv",
        "results/figures/ddpm_quality.png",
        "results/figures/scale_ablation.png",
        "results/run_record.json",
    ]
    outputs += expand("results/figures/trace_{quantity}.png", quantity=TRACE_QUANTITIES)
    outputs += expand("results/figures/cosine_{classifier}.png", classifier=config["grid"]["classifiers"])
    outputs += expand("results/figures/samples_{classifier}.png", classifier=config["grid"]["classifiers"])
    outputs += [f"results/figures/grids/{CELL_NAME}.png".format(**c) for c in all_cells()]
    if config.get("sensitivity"):
        outputs += ["results/sensitivity.csv", "results/figures/sensitivity.png"]
    return outputs
