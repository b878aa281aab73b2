"""The plan's cross-key checks: what a JSON schema cannot state, each naming the keys involved."""

from __future__ import annotations

from .plan_base import BASELINE, data_class_counts, replicate_seeds, sweep_variant
from .settings import OWN_SCALE_STEP_RULES, REPLICATE_STRIDE, ROLES, linear_beta_range, unet_config


class ConfigChecks:
    """The plan's cross-key checks: what a JSON schema cannot state, each naming the keys involved. A mixin of
    :class:`gradcheck.plan.Plan`."""

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

    def _check_methods(self):
        """Each preset must make a guided step: refused here, naming its key."""
        for name, preset in self.methods["presets"].items():
            if name == BASELINE:
                raise ValueError(f"config: methods.presets.{name}: the name is the study's robust baseline's")
            if preset["method"] != "paper" and preset.get("x0") is False:
                raise ValueError(f"config: methods.presets.{name}.x0 is false, but method {preset['method']!r} "
                                 "classifies x0-hat")
            try:
                rule = self.method_settings(name, "none").step.step_rule
            except ValueError as err:
                raise ValueError(f"config: methods.presets.{name}: {err}") from None
            if rule in OWN_SCALE_STEP_RULES and "scales" not in preset:
                raise ValueError(f"config: methods.presets.{name}: its step ({rule!r}) is in other units than "
                                 f"grid.scale's, so it needs scales of its own (methods.presets.{name}.scales; the "
                                 "lowest FID is kept)")
            steps = self.method_steps(name)
            if steps not in (None, "all") and steps > self.cfg["ddpm"]["timesteps"]:
                raise ValueError(f"config: methods.presets.{name}.steps ({steps}) exceeds ddpm.timesteps "
                                 f"({self.cfg['ddpm']['timesteps']})")
