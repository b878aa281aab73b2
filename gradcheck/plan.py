"""The workflow's plan: which cells, models and files a config asks for, and the flags of each job.

Everything the rule files decide lives here, as methods of :class:`Plan`, so that unit tests reach
it (tests/test_plan.py) and no rule file reads another's globals: rules/common.smk builds one
``Plan(config)``, and the rules call it. Building a plan checks the config's cross-key
constraints, those a JSON schema cannot state, naming the keys involved. Torch-free: the workflow
builds it while it parses, before any job.
"""

from __future__ import annotations

import itertools

from .settings import (GUIDES, HEADLINE, REPLICATE_STRIDE, ROLES, STABILISER_PRESETS, ClassifierTrainConfig,
                       GuidanceSettings, adam_name, default, linear_beta_range, unet_config)
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


class Plan:
    """The jobs of one config (as the workflow reads it: merged and with the schema's defaults)."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.settings = study_settings_all(cfg)  # variant -> its settings; 'default': the config's
        self.variants = study_variants(cfg)
        self.study = cfg.get("sensitivity") or {}
        self.class_counts = self.check()
        self.replicates = list(range(cfg["replicates"]))
        name = DATA_NAMES[cfg["data"]["source"]]
        self.data, self.data_sheet = f"results/data/{name}.npz", f"results/figures/{name}.png"
        self.scale = fmt_scale(cfg["grid"]["scale"])
        self.methods = cfg.get("methods") or None
        if self.methods:
            self._check_methods()
        self.stabiliser_study = cfg.get("stabiliser_study") or None
        if self.stabiliser_study:
            self.stabiliser_cells()  # an unknown preset stops here, naming the key

    # --- checks -------------------------------------------------------------------------------

    def check(self):
        """Cross-key checks that a JSON schema cannot express; each names the keys involved.
        Returns the data's class counts (class -> (training, validation) images)."""
        cfg = self.cfg
        unet_config(cfg)
        for name, settings in self.settings.items():
            where = "" if name == "default" else f" in sensitivity variant {name!r}"
            if cfg["ddpm"]["scale_betas"]:
                try:
                    linear_beta_range(settings["timesteps"], True)
                except ValueError:
                    raise ValueError(f"config: ddpm.scale_betas needs ddpm.timesteps above 20, "
                                     f"got {settings['timesteps']}{where}") from None
            steps = settings["steps"]
            if steps not in (None, "all") and steps > settings["timesteps"]:
                raise ValueError(f"config: sampling.steps ({steps}) exceeds ddpm.timesteps ({settings['timesteps']}){where}")
        counts, target = data_class_counts(cfg), cfg["sampling"]["target"]
        if target not in counts:
            where = "data.classes" if cfg["data"]["source"] == "sportballs" else f"the {cfg['data']['source']} data's classes"
            raise ValueError(f"config: sampling.target {target!r} is not among {where} ({', '.join(counts)})")
        self._check_brought_models(tuple(counts))
        self._check_seeds_and_images(counts[target][0])
        self._check_instruments()
        if sweep_variant(cfg) not in self.variants:
            raise ValueError(f"config: sensitivity.sweep.variant {sweep_variant(cfg)!r} is not a variant; "
                             f"choose one of {', '.join(self.variants)}")
        if cfg["metrics"]["fid_features"] == "inception" and not cfg["metrics"].get("inception_weights"):
            raise ValueError("config: metrics.fid_features is 'inception' but metrics.inception_weights is not set")
        return counts

    def _check_seeds_and_images(self, n_real):
        cfg = self.cfg
        fid_n = cfg["metrics"].get("fid_n") or cfg["sampling"]["num_samples"]
        if fid_n > cfg["sampling"]["num_samples"]:
            raise ValueError(f"config: metrics.fid_n ({fid_n}) exceeds sampling.num_samples")
        replicates = cfg["replicates"]
        if isinstance(replicates, bool) or not isinstance(replicates, int):  # the schema takes 3.0 for an integer
            raise ValueError(f"config: replicates must be a whole number of training replicates (1 or more), "
                             f"got {replicates!r}")
        n_seeds, target = len(cfg["sampling"]["seeds"]), cfg["sampling"]["target"]
        if fid_n * n_seeds * replicates > n_real:
            have = ("data.train_per_class" if cfg["data"]["source"] == "sportballs"
                    else f"the {n_real} training images of class {target!r}")
            raise ValueError(
                f"config: metrics.fid_n ({fid_n}) x {n_seeds} sampling.seeds x {replicates} replicates exceeds {have} "
                f"({n_real}): every seed of every replicate needs its own real images"
            )
        for key, seeds in (("sampling.seeds", cfg["sampling"]["seeds"]), ("sensitivity.seeds", self.study.get("seeds") or [])):
            drawn = [s for r in range(replicates) for s in replicate_seeds(seeds, r)]
            if len(set(drawn)) != len(drawn):
                raise ValueError(f"config: {key} {seeds} overlap across the {replicates} replicates, which add "
                                 f"{REPLICATE_STRIDE} x r to every seed; keep the seeds below {REPLICATE_STRIDE}")

    def _check_instruments(self):
        """The FID feature network must not be the judge, which only scores."""
        cfg = self.cfg
        if self.brought("features") and self.brought("features") == self.brought("judge"):
            raise ValueError("config: classifiers.features.pretrained is the judge's file: the FID features must come "
                             "from another network than the judge, which only scores")
        seeds = cfg["classifiers"]["seeds"]
        if (not self.brought("features") and not self.brought("judge") and seeds["features"] == seeds["judge"]
                and self.architecture("features") == self.architecture("judge")):
            raise ValueError("config: classifiers.seeds.features equals classifiers.seeds.judge with the same "
                             "architecture (classifiers.features_architecture): the FID feature network would be the judge")

    def _check_brought_models(self, classes):
        """Brought models must fit the data and the schedule: checked here, before any job, naming the key."""
        cfg = self.cfg
        size, timesteps = cfg["data"]["image_size"], cfg["ddpm"]["timesteps"]
        for name, settings in self.settings.items():
            for model in ("ddpm", "robust"):
                if settings["timesteps"] != timesteps and self.brought(model):
                    key = "ddpm.pretrained" if model == "ddpm" else "classifiers.robust.pretrained"
                    raise ValueError(f"config: sensitivity variant {name!r} changes ddpm.timesteps to "
                                     f"{settings['timesteps']}, which needs a {model} trained for it, but {key} "
                                     f"brings one for T = {timesteps}")
        if not any(self.brought(model) for model in ("ddpm", *ROLES)):
            return
        from .pretrained import check_classifier_file, check_ddpm_pipeline

        if self.brought("ddpm"):
            try:
                check_ddpm_pipeline(self.brought("ddpm"), size, timesteps, cfg["ddpm"]["scale_betas"])
            except ValueError as err:
                raise ValueError(f"config: ddpm.pretrained: {err}") from None
        for model in ROLES:
            if self.brought(model):
                try:  # role features: its pooled features must be found (FID and KID use them)
                    check_classifier_file(self.brought(model), classes, size, model)
                except ValueError as err:
                    raise ValueError(f"config: classifiers.{model}.pretrained: {err}") from None

    # --- models -------------------------------------------------------------------------------

    def brought(self, name):
        """The user's model that replaces training ``name`` ('ddpm' or a classifier role), or None."""
        if name == "ddpm":
            return self.cfg["ddpm"].get("pretrained")
        return (self.cfg["classifiers"].get(name) or {}).get("pretrained")

    def architecture(self, role):
        """The torchvision architecture a classifier role trains (the guides: the paper's MobileNetV3-small)."""
        if role in ARCHITECTURE_KEY:
            return self.cfg["classifiers"][ARCHITECTURE_KEY[role]]
        return default(ClassifierTrainConfig, "architecture")

    def model_name(self, base, timesteps=None, replicate=0):
        """The file name of a model: 'ddpm', 'ddpm_T25', 'robust_r1', 'robust_T25_r2', 'judge'.

        Only the robust classifier and the DDPM see the noise schedule, so only they are trained once per T;
        the judge and the FID feature network are instruments, and a brought model is not trained: neither is
        replicated.
        """
        name = base
        if base in ("ddpm", "robust") and timesteps not in (None, self.cfg["ddpm"]["timesteps"]):
            name += f"_T{timesteps}"
        if base in ("ddpm", *GUIDES) and not self.brought(base):
            name += rep_suffix(replicate)
        return name

    def parse_model(self, name):
        """'robust_T25_r2' -> ('robust', 25, 2); T is the config's where the name has none."""
        base, *parts = name.split("_")
        timesteps, replicate = self.cfg["ddpm"]["timesteps"], 0
        for part in parts:
            if part.startswith("T"):
                timesteps = int(part[1:])
            elif part.startswith("r"):
                replicate = int(part[1:])
        return base, timesteps, replicate

    def ddpm_path(self, timesteps=None, replicate=0):
        return "results/models/" + self.model_name("ddpm", timesteps, replicate)

    def classifier_path(self, name, timesteps=None, replicate=0):
        return f"results/models/{self.model_name(name, timesteps, replicate)}.pt"

    def reference_path(self, timesteps=None, replicate=0):
        """The classifier whose gradient at x_t the applied guidance is compared with (informativeness):
        the replicate's noise-aware guide, at the variant's T. It watches every cell, guiding none."""
        return self.classifier_path("robust", timesteps, replicate)

    def run_models(self):
        """name -> file of every model the run uses: each replicate's DDPM and guides, the judge, the features."""
        models = {self.model_name("ddpm", replicate=r): self.ddpm_path(replicate=r) for r in self.replicates}
        for base in GUIDES:
            models |= {self.model_name(base, replicate=r): self.classifier_path(base, replicate=r) for r in self.replicates}
        models["judge"] = JUDGE
        if self.cfg["metrics"]["fid_features"] == "features":
            models["features"] = FEATURES
        return models

    def classifiers(self):
        """name -> weights of every classifier the run uses."""
        return {name: path for name, path in self.run_models().items() if path.endswith(".pt")}

    def replicate_record(self):
        """Every training replicate's seeds, as the run record keeps them."""
        seeds = self.cfg["classifiers"]["seeds"]
        return [{"replicate": r, "ddpm_seed": replicate_seeds([self.cfg["ddpm"]["seed"]], r)[0],
                 **{f"{base}_seed": replicate_seeds([seeds[base]], r)[0] for base in GUIDES},
                 "sampling_seeds": replicate_seeds(self.cfg["sampling"]["seeds"], r)} for r in self.replicates]

    # --- flags of the training and data jobs --------------------------------------------------

    def data_flags(self):
        """make-data's flags (SportBalls) or import-images' (the digits, a folder)."""
        data = self.cfg["data"]
        if data["source"] != "sportballs":
            return cli_flags(size=data["image_size"], val_fraction=data["val_fraction"], seed=data["seed"])
        return cli_flags(size=data["image_size"], train_per_class=data["train_per_class"],
                         val_per_class=data["val_per_class"], seed=data["seed"], classes=data["classes"],
                         scale_range=data["scale_range"])

    def image_folder(self):
        """The folder import-images reads: the digits as exported, or data.folder."""
        return DIGITS_FOLDER if self.cfg["data"]["source"] == "digits" else self.cfg["data"]["folder"]

    def folder_contents(self):
        """A hash of a user's folder's file list, sizes and times (a user's folder is no job's output, so a
        changed image must rerun the import through the params); empty for the exported digits."""
        if self.cfg["data"]["source"] != "folder":
            return ""
        from .folder import folder_fingerprint

        return folder_fingerprint(self.cfg["data"]["folder"])

    def ddpm_training_flags(self, name):
        """train-ddpm's flags for 'ddpm', 'ddpm_T25' or 'ddpm_r1': the config's, with that T and replicate's seed."""
        _, timesteps, replicate = self.parse_model(name)
        training = {key: value for key, value in self.cfg["ddpm"].items() if key != "pretrained"}
        seed = replicate_seeds([self.cfg["ddpm"]["seed"]], replicate)[0]
        return cli_flags(**(training | {"timesteps": timesteps, "seed": seed}))

    def classifier_training_flags(self, name):
        base, timesteps, replicate = self.parse_model(name)
        clf = self.cfg["classifiers"]
        return cli_flags(
            # the DDPM's schedule: the robust classifier trains on it, every classifier's noisy accuracy uses it
            timesteps=timesteps, scale_betas=self.cfg["ddpm"]["scale_betas"],
            epochs=clf["epochs"], batch_size=clf["batch_size"], lr=clf["lr"], patience=clf["patience"],
            seed=replicate_seeds([clf["seeds"][base]], replicate)[0],
            **({"architecture": clf[ARCHITECTURE_KEY[base]]} if base in ARCHITECTURE_KEY else {}),
        )

    def classifier_mode(self, name):
        return CLASSIFIER_MODE[self.parse_model(name)[0]]

    def brought_ddpm_files(self):
        """Every file of the brought pipeline: an edited one reruns the copy, and what depends on it."""
        from pathlib import Path

        return sorted(str(p) for p in Path(self.brought("ddpm")).rglob("*") if p.is_file())

    def brought_classifier_pattern(self):
        return alternatives([name for name in CLASSIFIER_MODE if self.brought(name)])

    def trained_classifier_pattern(self):
        """The wildcard pattern of the classifiers trained here (a brought one is copied instead)."""
        return alternatives([f"{name}(_r[1-9][0-9]*)?" if name in GUIDES else name
                             for name in CLASSIFIER_MODE if not self.brought(name)] + ["robust_T[0-9]+(_r[1-9][0-9]*)?"])

    # --- cells ------------------------------------------------------------------------------------

    def cells(self, section):
        """(classifier, x0, stabiliser, scale) of every cell of config[section] ('grid' or 'ablation')."""
        spec = self.cfg[section]
        scales = [spec["scale"]] if section == "grid" else spec["scales"]
        return [dict(classifier=c, x0=fmt_bool(x), stabiliser=st, scale=fmt_scale(s))
                for c, x, st, s in itertools.product(spec["classifiers"], spec["x0"], spec["stabilisers"], scales)]

    def cell_paths(self, pattern, section, classifier=None):
        """``pattern`` filled in for every cell of a section (optionally one classifier's)."""
        return [pattern.format(**c) for c in self.cells(section) if classifier in (None, c["classifier"])]

    def all_cells(self):
        unique = {tuple(c.values()): c for c in self.cells("grid") + self.cells("ablation")}
        return list(unique.values())

    def replicate_files(self, pattern, wildcards, replicates=None):
        """``pattern`` (with {rep}) filled in for every replicate, in replicate order."""
        values = dict(wildcards.items())
        return [pattern.format(**values, rep=rep_suffix(r)) for r in (self.replicates if replicates is None else replicates)]

    def grid_samples(self, classifier=None):
        """Every replicate's sample file of every grid cell (of one classifier)."""
        return [path for c in self.cells("grid") if classifier in (None, c["classifier"])
                for path in self.replicate_files(SAMPLES, c)]

    def grid_groups(self, classifier=None):
        """One argument per grid cell: its replicates' sample files joined by commas, as the figures read them."""
        return [",".join(self.replicate_files(SAMPLES, c)) for c in self.cells("grid")
                if classifier in (None, c["classifier"])]

    def grid_classifiers(self, classifier=None):
        return [c["classifier"] for c in self.cells("grid") if classifier in (None, c["classifier"])]

    def baseline_groups(self):
        """Each guide's unmodified cell (x_t, no stabiliser) at the grid's scale: figure 1."""
        return [",".join(self.replicate_files(SAMPLES, dict(classifier=c, x0="false", stabiliser="none", scale=self.scale)))
                for c in self.cfg["grid"]["classifiers"]]

    # --- flags of the sampling and evaluation jobs ----------------------------------------------

    def ddpm_quality_flags(self, replicate):
        """`gradcheck ddpm-quality`'s flags for one replicate's DDPM: the grid's seeds, samples and batch, and
        what can change an unguided cell's samples (steps, UNet dtype)."""
        cfg = self.cfg
        return cli_flags(
            seeds=replicate_seeds(cfg["sampling"]["seeds"], replicate), num_samples=cfg["sampling"]["num_samples"],
            batch_size=cfg["sampling"]["batch_size"], **relevant_settings({"scale": 0}, self.settings["default"]),
            confidence=cfg["metrics"]["confidence"])

    def ddpm_quality_features(self):
        """FID on the feature network's pooled features (the judge's where FID uses Inception: ddpm-quality has
        no Inception path)."""
        return f"--feature-classifier {FEATURES}" if self.cfg["metrics"]["fid_features"] == "features" else ""

    def sample_flags(self, cell, settings, num_samples, seeds):
        sampling = self.cfg["sampling"]
        return cli_flags(target=sampling["target"], num_samples=num_samples, batch_size=sampling["batch_size"],
                         judge_every=sampling["judge_every"], seeds=seeds, **relevant_settings(cell, settings))

    def evaluate_flags(self, num_samples):
        metrics = self.cfg["metrics"]
        return cli_flags(n=min(metrics.get("fid_n") or num_samples, num_samples), n_boot=metrics["n_boot"],
                         confidence=metrics["confidence"])

    def fid_options(self):
        metrics = self.cfg["metrics"]
        if metrics["fid_features"] == "inception":
            return f"--features inception --inception-weights {metrics['inception_weights']}"
        return f"--features features --feature-classifier {FEATURES}"

    def fid_inputs(self):
        return [FEATURES] if self.cfg["metrics"]["fid_features"] == "features" else []

    # --- the sensitivity study ------------------------------------------------------------------

    def study_samples(self):
        return self.study.get("num_samples", self.cfg["sampling"]["num_samples"])

    def study_seeds(self):
        return self.study.get("seeds", self.cfg["sampling"]["seeds"])

    def study_jobs(self):
        """(variant, cell) of every row of the study's table."""
        if not self.study:
            raise ValueError("results/sensitivity.csv needs a `sensitivity` section in the config (see config.yaml)")
        cells = [dict(classifier=c["classifier"], x0=fmt_bool(c["x0"]), stabiliser=c["stabiliser"], scale=self.scale)
                 for c in self.study["cells"]]
        jobs = [(variant, cell) for variant in self.variants for cell in cells]
        sweep = self.study.get("sweep")
        if sweep:
            jobs += [(sweep_variant(self.cfg), HEADLINE_CELL | dict(scale=fmt_scale(s))) for s in sweep["scales"]]
        return list({(v, tuple(c.values())): (v, c) for v, c in jobs}.values())

    STUDY_PATH = "results/sensitivity/{variant}/{kind}/" + CELL

    def study_metrics(self, variant, cell):
        """The metrics file that serves (variant, cell): the default's when none of its changes matter."""
        settings, default = self.settings[variant], self.settings["default"]
        same = (settings["timesteps"] == default["timesteps"]
                and relevant_settings(cell, settings) == relevant_settings(cell, default))
        return self.STUDY_PATH.format(variant="default" if same else variant, kind="metrics", **cell) + ".json"

    # --- the headline cell against the earlier DDPMs ----------------------------------------------

    def headline_metrics(self):
        return METRICS.format(**HEADLINE_CELL, scale=self.scale)

    def has_headline(self):
        grid = self.cfg["grid"]
        classifier, x0, stabiliser = HEADLINE
        return classifier in grid["classifiers"] and x0 in grid["x0"] and stabiliser in grid["stabilisers"]

    def history_cell(self):
        """(metrics file, variant) of the headline cell at the earlier DDPMs' settings: the grid's own, or a
        sensitivity variant's that makes the guidance theirs (configs/clipping.yaml's no_clip); None if neither."""
        if not all(self.cfg[section][key] == value for (section, key), value in HISTORY_RUN.items()):
            return None

        def as_in_history(settings):
            return all(("all" if settings[k] is None else settings[k]) == v for k, v in HISTORY_SETTINGS.items())

        if as_in_history(self.settings["default"]):
            return self.headline_metrics(), None
        if not any((c["classifier"], c["x0"], c["stabiliser"]) == HEADLINE
                   for c in self.study.get("cells", [])):
            return None
        for variant, settings in self.settings.items():
            if variant != "default" and as_in_history(settings):
                return self.study_metrics(variant, HEADLINE_CELL | {"scale": self.scale}), variant
        return None

    # --- the methods study ----------------------------------------------------------------------

    def spread_cells(self):
        """(DDPM replicate, guide replicate, samples file) of every pair on the headline cell: the grid's own
        file where both are one replicate's, a spread job's otherwise."""
        if len(self.replicates) < 2:
            raise ValueError(f"results/spread.csv crosses the replicates' DDPMs and guides: it needs replicates >= 2, "
                             f"got {len(self.replicates)}")
        cell = HEADLINE_CELL | {"scale": self.scale}
        return [(d, g, SAMPLES.format(**cell, rep=rep_suffix(d)) if d == g
                 else SPREAD_SAMPLES.format(**cell, ddpm_rep=d, guide_rep=g))
                for d in self.replicates for g in self.replicates]

    def _check_methods(self):
        """Each preset must make a guided step: refused here, naming its key."""
        for name, preset in self.methods["presets"].items():
            if name == BASELINE:
                raise ValueError(f"config: methods.presets.{name}: the name is the study's robust baseline's")
            if preset["method"] != "paper" and preset.get("x0") is False:
                raise ValueError(f"config: methods.presets.{name}.x0 is false, but method {preset['method']!r} "
                                 "classifies x0-hat")
            try:
                self.method_settings(name, "none")
            except ValueError as err:
                raise ValueError(f"config: methods.presets.{name}: {err}") from None
            steps = self.method_steps(name)
            if steps not in (None, "all") and steps > self.cfg["ddpm"]["timesteps"]:
                raise ValueError(f"config: methods.presets.{name}.steps ({steps}) exceeds ddpm.timesteps "
                                 f"({self.cfg['ddpm']['timesteps']})")

    def method_settings(self, preset, stabiliser, scale=1.0):
        """The GuidanceSettings of a preset's cell (its checks refuse a step it cannot take)."""
        spec = self.methods["presets"][preset]
        return GuidanceSettings(scale=scale, x0_hat=spec.get("x0", spec["method"] != "paper"), stabiliser=stabiliser,
                                method=spec["method"], recurrence=spec.get("recurrence"),
                                inner_steps=spec.get("inner_steps"))

    def method_steps(self, preset):
        return self.methods["presets"][preset].get("steps", self.methods["steps"])

    def method_scales(self, preset):
        """The scales a preset is sampled at: DPS's own list (the lowest FID chosen), else the grid's s."""
        if self.methods["presets"][preset]["method"] == "dps":
            return [fmt_scale(s) for s in self.methods["dps_scales"]]
        return [self.scale]

    def method_cells(self):
        """(preset, stabiliser, scale) of every cell of the study, the robust baseline first."""
        cells = [dict(preset=BASELINE, stabiliser="none", scale=self.scale)]
        for preset in self.methods["presets"]:
            cells += [dict(preset=preset, stabiliser=st, scale=s)
                      for st in self.methods["stabilisers"] for s in self.method_scales(preset)]
        return cells

    def method_guide(self, preset, replicate=0):
        return self.classifier_path("robust" if preset == BASELINE else self.methods["classifier"], replicate=replicate)

    def method_flags(self, preset, stabiliser, replicate):
        """gradcheck sample's flags of a study cell (the scale is the wildcard's): as for the grid's cells, only
        the settings that can change its samples, so that changing another reruns none of its jobs."""
        sampling = self.cfg["sampling"]
        if preset == BASELINE:
            step, steps = dict(method="paper", x0_hat=False), self.methods["steps"]
        else:
            settings, steps = self.method_settings(preset, stabiliser), self.method_steps(preset)
            step = dict(method=settings.method, x0_hat=settings.x0_hat)
            step |= {k: getattr(settings, k) for k in ("recurrence", "inner_steps") if getattr(settings, k) is not None}
        cell = dict(scale=1, x0=str(step["x0_hat"]).lower(), stabiliser="none" if preset == BASELINE else stabiliser)
        return cli_flags(target=sampling["target"], num_samples=self.methods["num_samples"],
                         batch_size=sampling["batch_size"], judge_every=sampling["judge_every"],
                         seeds=replicate_seeds(self.methods["seeds"], replicate),
                         **relevant_settings(cell, self.cfg["guidance"] | {"steps": steps}), **step)

    def method_metrics(self):
        """'preset=stabiliser=scale=metrics file' of every cell, as `gradcheck methods-table` reads them."""
        return [f"{c['preset']}={c['stabiliser']}={c['scale']}=" + METHOD_METRICS.format(**c) for c in self.method_cells()]

    # --- the stabiliser study (rules/stabilisers.smk): grid cells at the grid's scale -----------------

    def stabiliser_cells(self, stabilisers=None):
        """(classifier, x0, stabiliser, scale) of every study cell (of the given stabilisers only)."""
        spec = self.stabiliser_study
        names = study_stabilisers(spec)
        return [dict(classifier=c, x0=fmt_bool(x), stabiliser=st, scale=self.scale)
                for c, x, st in itertools.product(spec["classifiers"], spec["x0"], names)
                if stabilisers is None or st in stabilisers]

    def stabiliser_groups(self, stabilisers=None):
        """Each study cell's replicates' sample files joined by commas, and its guide, as the figures read them."""
        cells = self.stabiliser_cells(stabilisers)
        return [",".join(self.replicate_files(SAMPLES, c)) for c in cells], [c["classifier"] for c in cells]

    # --- every output -------------------------------------------------------------------------

    def all_outputs(self):
        outputs = [
            "results/table1.csv", "results/table1.md", "results/table1.tex", "results/findings.md",
            "results/classifiers.csv", "results/figures/classifiers.png", self.data_sheet,
            "results/figures/cosine_baseline.png", "results/scale_ablation.csv", "results/ddpm.csv",
            "results/figures/ddpm_quality.png", "results/figures/scale_ablation.png", "results/run_record.json",
            "results/figures/replicates.png",
        ]
        if self.has_headline():
            outputs.append("results/figures/headline_vs_ddpm.png")
        outputs += [f"results/figures/trace_{q}.png" for q in TRACE_QUANTITIES]
        outputs += [f"results/figures/cosine_{c}.png" for c in self.cfg["grid"]["classifiers"]]
        outputs += [f"results/figures/samples_{c}.png" for c in self.cfg["grid"]["classifiers"]]
        outputs += [f"results/figures/grids/{CELL_NAME}.png".format(**c) for c in self.all_cells()]
        if self.study:
            outputs += ["results/sensitivity.csv", "results/figures/sensitivity.png"]
        if self.methods:
            outputs += ["results/methods.csv", "results/figures/methods.png"]
        if self.stabiliser_study:
            outputs += STABILISER_OUTPUTS
        return outputs
