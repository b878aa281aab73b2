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
    replicates = cfg["replicates"]
    if isinstance(replicates, bool) or not isinstance(replicates, int):  # the schema takes 3.0 for an integer
        raise ValueError(f"config: replicates must be a whole number of training replicates (1 or more), got {replicates!r}")
    if fid_n * n_seeds * replicates > n_real:
        have = ("data.train_per_class" if cfg["data"]["source"] == "sportballs"
                else f"the {n_real} training images of class {target!r}")
        raise ValueError(
            f"config: metrics.fid_n ({fid_n}) x {n_seeds} sampling.seeds x {replicates} replicates exceeds {have} "
            f"({n_real}): every seed of every replicate needs its own real images"
        )
    for key, seeds in (("sampling.seeds", cfg["sampling"]["seeds"]),
                       ("sensitivity.seeds", (cfg.get("sensitivity") or {}).get("seeds") or [])):
        drawn = [s for r in range(replicates) for s in replicate_seeds(seeds, r)]
        if len(set(drawn)) != len(drawn):
            raise ValueError(f"config: {key} {seeds} overlap across the {replicates} replicates, which add "
                             f"{REPLICATE_STRIDE} x r to every seed; keep the seeds below {REPLICATE_STRIDE}")
    features = cfg["classifiers"].get("features") or {}
    if features.get("pretrained") and features["pretrained"] == brought("judge", cfg):
        raise ValueError("config: classifiers.features.pretrained is the judge's file: the FID features must come "
                         "from another network than the judge, which only scores")
    seeds = cfg["classifiers"]["seeds"]
    if (not features.get("pretrained") and not brought("judge", cfg) and seeds["features"] == seeds["judge"]
            and cfg["classifiers"]["features_architecture"] == cfg["classifiers"]["judge_architecture"]):
        raise ValueError("config: classifiers.seeds.features equals classifiers.seeds.judge with the same "
                         "architecture (classifiers.features_architecture): the FID feature network would be the judge")
    if sweep_variant(cfg) not in study_variants(cfg):
        raise ValueError(f"config: sensitivity.sweep.variant {sweep_variant(cfg)!r} is not a variant; "
                         f"choose one of {', '.join(study_variants(cfg))}")
    metrics = cfg["metrics"]
    if metrics["fid_features"] == "inception" and not metrics.get("inception_weights"):
        raise ValueError("config: metrics.fid_features is 'inception' but metrics.inception_weights is not set")


# Replicate r trains every model the study trains with seeds + REPLICATE_STRIDE x r and samples with
# sampling seeds + REPLICATE_STRIDE x r: its own noise, so replicates are independent draws of the recipe.
REPLICATE_STRIDE = 1000


def replicate_seeds(seeds, replicate):
    return [seed + REPLICATE_STRIDE * replicate for seed in seeds]


def brought(name, cfg=config):
    """The user's model that replaces training ``name`` ('ddpm', 'robust', 'nonrobust', 'judge' or
    'features'), or None."""
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
    if not any(brought(model, cfg) for model in ("ddpm", "robust", "nonrobust", "judge", "features")):
        return
    from gradcheck.pretrained import check_classifier_file, check_ddpm_pipeline

    if brought("ddpm", cfg):
        try:
            check_ddpm_pipeline(brought("ddpm", cfg), size, timesteps, cfg["ddpm"]["scale_betas"])
        except ValueError as err:
            raise ValueError(f"config: ddpm.pretrained: {err}") from None
    for model in ("robust", "nonrobust", "judge", "features"):
        if brought(model, cfg):
            try:  # role features: its pooled features must be found (FID and KID use them)
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
# One sampling job per cell and training replicate: replicate 0 has no suffix, replicate r ends in _r<r>.
CELL_REP = CELL + "{rep}"
REPLICATES = list(range(config["replicates"]))


wildcard_constraints:
    classifier="robust|nonrobust",
    model=r"(robust(_T[0-9]+)?|nonrobust)(_r[1-9][0-9]*)?|judge|features",
    ddpm=r"ddpm(_T[0-9]+)?(_r[1-9][0-9]*)?",
    rep=r"(_r[1-9][0-9]*)?",
    variant="[A-Za-z][A-Za-z0-9_.-]*",
    x0="true|false",
    stabiliser=r"none|adam|ema0\.[0-9]+",
    quantity="grad_norm|eps_cosine|judge_confidence",
    scale=r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?",


def rep_suffix(replicate):
    return f"_r{replicate}" if replicate else ""


def rep_index(suffix):
    """'' -> 0, '_r2' -> 2: the replicate of a {rep} wildcard."""
    return int(suffix[2:]) if suffix else 0


def model_name(base, timesteps=None, replicate=0):
    """The file name of a model: 'ddpm', 'ddpm_T25', 'robust_r1', 'robust_T25_r2', 'judge'.

    Only the robust classifier and the DDPM see the noise schedule, so only they are trained once per T;
    the judge and the FID feature network are instruments, and a brought model is not trained: neither is
    replicated.
    """
    name = base
    if base in ("ddpm", "robust") and timesteps not in (None, config["ddpm"]["timesteps"]):
        name += f"_T{timesteps}"
    if base in ("ddpm", "robust", "nonrobust") and not brought(base):
        name += rep_suffix(replicate)
    return name


def parse_model(name):
    """'robust_T25_r2' -> ('robust', 25, 2); T is config's where the name has none."""
    base, *parts = name.split("_")
    timesteps, replicate = config["ddpm"]["timesteps"], 0
    for part in parts:
        if part.startswith("T"):
            timesteps = int(part[1:])
        elif part.startswith("r"):
            replicate = int(part[1:])
    return base, timesteps, replicate


def ddpm_path(timesteps, replicate=0):
    return "results/models/" + model_name("ddpm", timesteps, replicate)


def classifier_path(name, timesteps=None, replicate=0):
    return f"results/models/{model_name(name, timesteps, replicate)}.pt"


def replicate_files(pattern, wildcards, replicates=None):
    """``pattern`` (with {rep}) filled in for every replicate, in replicate order."""
    values = dict(wildcards.items())
    return [pattern.format(**values, rep=rep_suffix(r)) for r in (REPLICATES if replicates is None else replicates)]


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


FEATURES = "results/models/features.pt"  # the FID feature network: never guides, never judges


def fid_options(wildcards):
    metrics = config["metrics"]
    if metrics["fid_features"] == "inception":
        return f"--features inception --inception-weights {metrics['inception_weights']}"
    return f"--features features --feature-classifier {FEATURES}"


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
        "results/figures/replicates.png",
    ]
    grid = config["grid"]
    if "nonrobust" in grid["classifiers"] and True in grid["x0"] and "adam" in grid["stabilisers"]:
        outputs.append("results/figures/headline_vs_ddpm.png")
    outputs += expand("results/figures/trace_{quantity}.png", quantity=TRACE_QUANTITIES)
    outputs += expand("results/figures/cosine_{classifier}.png", classifier=config["grid"]["classifiers"])
    outputs += expand("results/figures/samples_{classifier}.png", classifier=config["grid"]["classifiers"])
    outputs += [f"results/figures/grids/{CELL_NAME}.png".format(**c) for c in all_cells()]
    if config.get("sensitivity"):
        outputs += ["results/sensitivity.csv", "results/figures/sensitivity.png"]
    return outputs
