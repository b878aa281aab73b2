"""The plan's vocabulary: the path of every output, cell and replicate naming, job flags and the
config's study variants, as plain constants and functions (gradcheck.plan builds the plan from them).
Torch-free."""

from __future__ import annotations

import itertools

from .settings import HEADLINE, REPLICATE_STRIDE, STABILISER_PRESETS, adam_name
from .trace_quantities import DRAWN

CELL = "{classifier}/x0-{x0}_{stabiliser}_s-{scale}"
CELL_NAME = "{classifier}_x0-{x0}_{stabiliser}_s-{scale}"
# One sampling job per cell and training replicate: replicate 0 has no suffix, replicate r ends in _r<r>.
CELL_REP = CELL + "{rep}"
SAMPLES = f"results/samples/{CELL_REP}.npz"
METRICS = f"results/metrics/{CELL}.json"
JUDGE = "results/models/judge.pt"
FEATURES = "results/models/features.pt"  # the FID feature network: never guides, never judges
DIGITS_FOLDER = "results/data/digits"  # scikit-learn's digits, exported as an image folder
TRACE_QUANTITIES = list(DRAWN)  # each drawn as results/figures/trace_<name>.png
# the data set file and its contact sheet are named after the source: results/data/<name>.npz, figures/<name>.png
DATA_NAMES = {"sportballs": "sportballs", "digits": "digits", "folder": "images"}
HEADLINE_CELL = dict(classifier=HEADLINE[0], x0="true" if HEADLINE[1] else "false", stabiliser=HEADLINE[2])
# The methods study: one sampling job per (preset, stabiliser, scale) and replicate, one evaluation per cell.
METHOD_CELL = "{preset}/{stabiliser}_s-{scale}"
METHOD_SAMPLES = "results/methods/samples/" + METHOD_CELL + "{rep}.npz"
METHOD_METRICS = "results/methods/metrics/" + METHOD_CELL + ".json"
# The spread study: the headline cell for every (DDPM replicate, guide replicate) pair; the diagonal is the grid's.
SPREAD_SAMPLES = "results/spread/samples/" + CELL + "_ddpm{ddpm_rep}_guide{guide_rep}.npz"
# The stabiliser study: its table, heatmaps, answers, and staleness and spread over time (paper's ADAM vs none)
STABILISER_OUTPUTS = ["results/stabilisers.csv", "results/figures/stabilisers.png", "results/stabilisers.md",
                      "results/figures/stabilisers_staleness.png", "results/figures/stabilisers_spread.png"]
BASELINE = "robust-baseline"  # the methods study's reference row: the robust guide on x_t, as Table 1's
NEVER = "(?!)"  # a wildcard pattern that matches nothing: the rule is off

# robust: trained on x_t (t uniform); nonrobust: on clean images; judge: clean, another seed and
# architecture, never used for guidance; features: clean, a third architecture, whose pooled features
# give FID and KID without Inception (so the judge, which scores, does not also help choose s).
CLASSIFIER_MODE = {"robust": "noisy", "nonrobust": "clean", "judge": "clean", "features": "clean"}
ARCHITECTURE_KEY = {"judge": "judge_architecture", "features": "features_architecture"}

# The earlier default DDPMs' headline cell (docs/data/headline_by_ddpm.csv) was measured at these
# settings; their points join a run's only where the run has them too.
HISTORY_RUN = {("data", "source"): "sportballs", ("data", "image_size"): 32, ("sampling", "target"): "baseball",
               ("grid", "scale"): 0.5}
HISTORY_SETTINGS = {"timesteps": 400, "steps": "all", "objective": "log_prob", "clip_x0": False, "normalise": True}


def replicate_seeds(seeds, replicate):
    """Replicate r trains and samples with every seed + REPLICATE_STRIDE x r: its own noise, so
    replicates are independent draws of the recipe."""
    return [seed + REPLICATE_STRIDE * replicate for seed in seeds]


def rep_suffix(replicate):
    return f"_r{replicate}" if replicate else ""


def rep_index(suffix):
    """'' -> 0, '_r2' -> 2: the replicate of a {rep} wildcard."""
    return int(suffix[2:]) if suffix else 0


def alternatives(patterns):
    """A wildcard pattern matching any of ``patterns``, or nothing."""
    return "|".join(patterns) if patterns else NEVER


def fmt_scale(scale):
    """One spelling per scale (10, 10.0 and 1e1 are the same cell)."""
    return f"{float(scale):g}"


def fmt_bool(value):
    return "true" if value else "false"


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


def study_stabilisers(spec) -> list[str]:
    """The stabiliser study's stabilisers: none, ADAM over adam_beta1 x adam_beta2 (the paper's betas named
    'adam'), then the named presets (settings.STABILISER_PRESETS), each once."""
    names = ["none"] + [adam_name(b1, b2) for b1, b2 in itertools.product(spec["adam_beta1"], spec["adam_beta2"])]
    for preset in spec.get("presets", []):
        if preset not in STABILISER_PRESETS:
            raise ValueError(f"config: stabiliser_study.presets: unknown preset {preset!r}; "
                             f"choose from {', '.join(STABILISER_PRESETS)}")
        names.append(STABILISER_PRESETS[preset])
    return list(dict.fromkeys(names))


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
    if cell["stabiliser"].startswith("adam"):
        options |= {"adam_eps": settings["adam_eps"], "bias_correction": settings["bias_correction"]}
    elif cell["stabiliser"] != "none" and not settings["normalise"]:
        options["bias_correction"] = settings["bias_correction"]  # eq. 2 cancels an EMA's correction
    return options


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


def data_class_counts(cfg):
    """class name -> (training, validation) images, in label order, known before any job runs:
    a bad folder stops the run here, naming the folder, the class or the file."""
    data = cfg["data"]
    if data["source"] == "sportballs":
        return {name: (data["train_per_class"], data["val_per_class"]) for name in data["classes"]}
    if data["source"] == "digits":
        from .digits import digit_counts

        return digit_counts(data["val_fraction"])
    if not data.get("folder"):
        raise ValueError("config: data.source is 'folder' but data.folder is not set; give the image folder's path")
    from .folder import scan_image_folder

    try:
        return scan_image_folder(data["folder"], data["val_fraction"])
    except ValueError as err:
        raise ValueError(f"config: data.folder: {err}") from None
