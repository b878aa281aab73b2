"""The conda environment for `--sdm conda` must pin what pyproject.toml pins."""

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(requirements):
    return dict(r.split("==") for r in requirements)


def test_conda_env_pins_agree_with_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pyproject = _pins(project["dependencies"])
    env = yaml.safe_load((REPO / "envs/gradcheck.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = _pins(pip)
    assert conda_pins, "envs/gradcheck.yaml has no pip pins"
    for name, version in conda_pins.items():
        assert pyproject.get(name) == version, f"{name}: env pins {version}, pyproject {pyproject.get(name)}"
    # everything the rules import is there; only Snakemake and its plugins run outside the env
    missing = set(pyproject) - set(conda_pins) - {n for n in pyproject if n.startswith("snakemake")}
    assert not missing, f"envs/gradcheck.yaml lacks {sorted(missing)}"
    assert conda_pins["torch"] == "2.14.1" and conda_pins["torchvision"] == "0.29.1"


def test_every_rule_has_log_benchmark_and_env():
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = text.count("\nrule ") + text.startswith("rule ")
        derived = text.count("\nuse rule ")  # `use rule A as B with:` inherits A's conda, needs its own log
        for directive in ("log:", "benchmark:"):
            assert text.count(f"    {directive}") == rules + derived, f"{smk.name}: not every rule has {directive}"
        assert text.count("    conda:") == rules, f"{smk.name}: not every rule has conda:"


def test_every_shipped_config_passes_the_schema():
    from snakemake.utils import validate

    from snakemake.utils import update_config

    default = yaml.safe_load((REPO / "config.yaml").read_text())
    for path in [REPO / "config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        if path.name == "schema.yaml":
            continue
        # `--configfile X` is merged over the Snakefile's config.yaml, key by key, as here
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        update_config(config, yaml.safe_load(path.read_text()))
        validate(config, str(REPO / "configs" / "schema.yaml"))  # raises, naming the key, if not
        assert config["guidance"]["objective"] in ("log_prob", "logit"), path.name  # defaults filled in
    assert "sensitivity" not in default  # the default run stays within its time; extended.yaml adds the study
