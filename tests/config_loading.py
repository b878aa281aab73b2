"""Reading the workflow's config as Snakemake does, for the tests (the package itself never needs it)."""

import copy
import dataclasses
from pathlib import Path

import yaml
from snakemake.utils import update_config, validate  # Snakemake's own merge and schema defaults

from gradcheck.settings import SETTINGS_CLASSES, default

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "configs" / "schema.yaml"


def config_fields():
    """(config key, settings class, field name, default) of every field read from the config."""
    for cls in SETTINGS_CLASSES:
        for f in dataclasses.fields(cls):
            if "config" in f.metadata:
                yield f.metadata["config"], cls, f.name, default(cls, f.name)


def lookup(cfg: dict, key: str, missing=None):
    """``cfg``'s value at dotted ``key``, or ``missing``."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return missing
        node = node[part]
    return node


def load_config(*overlays, base=ROOT / "config.yaml") -> dict:
    """config.yaml with every overlay (a path or a dict) merged over it in order, validated against
    configs/schema.yaml and with its defaults filled in: the config the workflow's rules see."""

    def read(source):
        return source if isinstance(source, dict) else (yaml.safe_load(Path(source).read_text()) or {})

    config = copy.deepcopy(read(base))
    for overlay in overlays:
        update_config(config, copy.deepcopy(read(overlay)))
    validate(config, str(SCHEMA))
    return config
