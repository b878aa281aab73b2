"""The studies' plans, each beside its rule file's needs: the sensitivity study, the methods study, the spread
study and the stabiliser study. Mixins of :class:`gradcheck.plan.Plan`; torch-free."""

from __future__ import annotations

import itertools

from .plan_base import (BASELINE, CELL, HEADLINE_CELL, HISTORY_RUN, HISTORY_SETTINGS, METHOD_METRICS, METRICS,
                        SAMPLES, SPREAD_SAMPLES, cli_flags, fmt_bool, fmt_scale, relevant_settings, rep_suffix,
                        replicate_seeds, study_stabilisers, sweep_variant)
from .settings import HEADLINE, GuidanceSettings


class SensitivityPlan:
    """The sensitivity study (rules/sensitivity.smk) and the headline cell against the earlier DDPMs. A mixin of
    :class:`gradcheck.plan.Plan`."""

    STUDY_PATH = "results/sensitivity/{variant}/{kind}/" + CELL

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

    def study_metrics(self, variant, cell):
        """The metrics file that serves (variant, cell): the default's when none of its changes matter."""
        settings, default = self.settings[variant], self.settings["default"]
        same = (settings["timesteps"] == default["timesteps"]
                and relevant_settings(cell, settings) == relevant_settings(cell, default))
        return self.STUDY_PATH.format(variant="default" if same else variant, kind="metrics", **cell) + ".json"

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


class MethodsPlan:
    """The methods study (rules/methods.smk): one sampling job per (preset, stabiliser, scale) and replicate. A
    mixin of :class:`gradcheck.plan.Plan`."""

    def method_settings(self, preset, stabiliser, scale=1.0):
        """The GuidanceSettings of a preset's cell (its checks refuse a step it cannot take)."""
        spec = self.methods["presets"][preset]
        return GuidanceSettings(scale=scale, x0_hat=spec.get("x0", spec["method"] != "paper"), stabiliser=stabiliser,
                                method=spec["method"], recurrence=spec.get("recurrence"),
                                inner_steps=spec.get("inner_steps"))

    def method_steps(self, preset):
        return self.methods["presets"][preset].get("steps", self.methods["steps"])

    def method_scales(self, preset):
        """The scales a preset is sampled at: its own list (the lowest FID chosen), else the grid's s."""
        return [fmt_scale(s) for s in self.methods["presets"][preset].get("scales", [])] or [self.scale]

    def own_scale_presets(self):
        """The presets that list their own scales instead of taking the grid's s."""
        return [p for p, spec in self.methods["presets"].items() if "scales" in spec]

    def method_cells(self):
        """(preset, stabiliser, scale) of every cell of the study, the robust baseline first."""
        cells = [dict(preset=BASELINE, stabiliser="none", scale=self.scale)]
        for preset in self.methods["presets"]:
            cells += [dict(preset=preset, stabiliser=st, scale=s)
                      for st in self.methods["stabilisers"] for s in self.method_scales(preset)]
        return cells

    def method_role(self, preset):
        """The guide's role in a preset's cells: the robust baseline's, or the study's classifier."""
        return "robust" if preset == BASELINE else self.methods["classifier"]

    def method_guide(self, preset, replicate=0):
        return self.classifier_path(self.method_role(preset), replicate=replicate)

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


class SpreadPlan:
    """The spread study (rules/spread.smk): every replicate's DDPM with every replicate's guide. A mixin of
    :class:`gradcheck.plan.Plan`."""

    def spread_cells(self):
        """(DDPM replicate, guide replicate, samples file) of every pair on the headline cell: the grid's own
        file where the grid samples that pair (one replicate's DDPM, guide and seeds), a spread job's otherwise."""
        if len(self.replicates) < 2:
            raise ValueError(f"results/spread.csv crosses the replicates' DDPMs and guides: it needs replicates >= 2, "
                             f"got {len(self.replicates)}")
        cell = HEADLINE_CELL | {"scale": self.scale}
        return [(d, g, SAMPLES.format(**cell, rep=rep_suffix(d)) if d == g and self.ddpm_replicate(g) == d
                 else SPREAD_SAMPLES.format(**cell, ddpm_rep=d, guide_rep=g))
                for d in self.replicates for g in self.replicates]


class StabiliserPlan:
    """The stabiliser study (rules/stabilisers.smk): grid cells at the grid's scale. A mixin of
    :class:`gradcheck.plan.Plan`."""

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
