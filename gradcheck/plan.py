"""The workflow's plan: which cells, models and files a config asks for, and the flags of each job.

Everything the rule files decide lives here, as methods of :class:`Plan`, so that unit tests reach
it (tests/test_plan.py) and no rule file reads another's globals: rules/common.smk builds one
``Plan(config)``, and the rules call it. Building a plan checks the config's cross-key
constraints, those a JSON schema cannot state, naming the keys involved. Torch-free: the workflow
builds it while it parses, before any job.
"""

from __future__ import annotations

import itertools

# the plan's vocabulary, re-exported: the rules and the tests read it from gradcheck.plan
from .plan_base import (ARCHITECTURE_KEY, BASELINE, CELL, CELL_NAME, CELL_REP, CLASSIFIER_MODE, DATA_NAMES,
                        DIGITS_FOLDER, FEATURES, HEADLINE_CELL, HISTORY_RUN, HISTORY_SETTINGS, JUDGE, METHOD_CELL,
                        METHOD_METRICS, METHOD_SAMPLES, METRICS, NEVER, SAMPLES, SPREAD_SAMPLES,
                        STABILISER_OUTPUTS, TRACE_QUANTITIES, alternatives, cli_flags, data_class_counts, fmt_bool,
                        fmt_scale, relevant_settings, rep_index, rep_suffix, replicate_seeds, study_settings_all,
                        study_stabilisers, study_variants, sweep_variant)
from .plan_checks import ConfigChecks
from .plan_models import ModelsPlan
from .plan_studies import MethodsPlan, SensitivityPlan, SpreadPlan, StabiliserPlan


class Plan(ConfigChecks, ModelsPlan, SensitivityPlan, MethodsPlan, SpreadPlan, StabiliserPlan):
    """The jobs of one config (as the workflow reads it: merged and with the schema's defaults): the grid's cells
    and flags here, the checks, models and studies in the mixins of gradcheck/plan_checks.py, plan_models.py and
    plan_studies.py."""

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
