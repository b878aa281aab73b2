"""The plan's models: their names and paths per replicate, brought models, and the data and training jobs' flags."""

from __future__ import annotations

from .plan_base import (ARCHITECTURE_KEY, CLASSIFIER_MODE, DIGITS_FOLDER, FEATURES, JUDGE, alternatives, cli_flags,
                        rep_suffix, replicate_seeds)
from .settings import GUIDES, ClassifierTrainConfig, default


class ModelsPlan:
    """The plan's models: their names and paths per replicate, brought models, and the data and training jobs'
    flags. A mixin of :class:`gradcheck.plan.Plan`."""

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

    def ddpm_replicate(self, replicate):
        """The DDPM that training replicate ``replicate`` samples with: its own (``replicate_ddpm: true``), or
        replicate 0's, which every replicate's guides share (the guides carry the spread: docs/spread.md). A
        brought DDPM is one DDPM."""
        return replicate if self.cfg["replicate_ddpm"] and not self.brought("ddpm") else 0

    @property
    def ddpm_replicates(self):
        """The DDPM replicates the run trains: every replicate's, or replicate 0's alone."""
        return sorted({self.ddpm_replicate(r) for r in self.replicates})

    def ddpm_path(self, timesteps=None, replicate=0):
        """The DDPM that training replicate ``replicate`` samples with."""
        return self.ddpm_replicate_path(timesteps, self.ddpm_replicate(replicate))

    def ddpm_replicate_path(self, timesteps=None, ddpm_replicate=0):
        """The DDPM trained from replicate ``ddpm_replicate``'s seed, whether or not the grid samples with it."""
        return "results/models/" + self.model_name("ddpm", timesteps, ddpm_replicate)

    def classifier_path(self, name, timesteps=None, replicate=0):
        return f"results/models/{self.model_name(name, timesteps, replicate)}.pt"

    def reference_path(self, timesteps=None, replicate=0):
        """The classifier whose gradient at x_t the applied guidance is compared with (informativeness):
        the replicate's noise-aware guide, at the variant's T. It watches every cell, guiding none."""
        return self.classifier_path("robust", timesteps, replicate)

    def run_models(self):
        """name -> file of every model the run uses: each replicate's DDPM and guides, the judge, the features."""
        models = {self.model_name("ddpm", replicate=d): self.ddpm_replicate_path(ddpm_replicate=d) for d in self.ddpm_replicates}
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
        return [{"replicate": r, "ddpm_seed": replicate_seeds([self.cfg["ddpm"]["seed"]], self.ddpm_replicate(r))[0],
                 **{f"{base}_seed": replicate_seeds([seeds[base]], r)[0] for base in GUIDES},
                 "sampling_seeds": replicate_seeds(self.cfg["sampling"]["seeds"], r)} for r in self.replicates]

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
        # processes: 1 (the default) is left out, so that runs made before the key existed stay up to date
        training = {key: value for key, value in self.cfg["ddpm"].items()
                    if key != "pretrained" and (key, value) != ("processes", 1)}
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
