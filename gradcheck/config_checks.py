"""The config's checks before Snakemake's schema validation: values typed on the command line coerced to
the schema's types, and a violation told in a few lines that name the key (and the nearest valid one).

Snakemake passes a nested ``--config grid='{scale: 3}'`` value as the string '3', which the schema would
refuse as "not of type 'number'"; and its own validation error prints the whole schema and config
(over a thousand lines for a misspelt top-level key). Torch-free: it runs while the workflow parses.
"""

from __future__ import annotations

import difflib

import yaml
from jsonschema import Draft202012Validator

TYPES = {"number": (int, float), "integer": (int,), "boolean": (bool,), "null": (type(None),),
         "string": (str,), "array": (list,), "object": (dict,)}
MESSAGE_LIMIT = 200  # characters of one error's message: the schema's own can quote a whole section


def _types(node: dict) -> list[str]:
    declared = node.get("type", [])
    return declared if isinstance(declared, list) else [declared]


def _typed(text: str, node: dict):
    """``text`` read as YAML where that gives a value of the node's type (and not a string); else ``text``."""
    wanted = _types(node)
    if not wanted or "string" in wanted:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    ok = any(isinstance(value, TYPES[t]) and not (t in ("number", "integer") and isinstance(value, bool))
             for t in wanted if t in TYPES)
    return value if ok else text


def _resolved(node: dict, root: dict) -> dict:
    """``node`` with a local ``$ref`` (#/$defs/...) replaced by what it points at, its own keys kept."""
    while isinstance(node, dict) and str(node.get("$ref", "")).startswith("#/"):
        target = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def coerce_to_schema(config, schema: dict, root: dict | None = None):
    """``config`` with every string that the schema types otherwise read as YAML (dicts changed in place)."""
    root = schema if root is None else root
    schema = _resolved(schema, root)
    if isinstance(config, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, value in config.items():
            node = properties.get(key, extra if isinstance(extra, dict) else {})
            config[key] = coerce_to_schema(value, node, root)
        return config
    if isinstance(config, list):
        return [coerce_to_schema(item, schema.get("items", {}), root) for item in config]
    if isinstance(config, str):
        return _typed(config, schema)
    return config


def schema_errors(config: dict, schema: dict) -> list[str]:
    """One short line per violation, naming the key; an unknown key with the nearest valid one."""
    lines = []
    for error in sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.path))):
        where = ".".join(map(str, error.absolute_path))
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = list(error.schema.get("properties", {}))
            for key in (k for k in error.instance if k not in allowed):
                name = f"{where}.{key}" if where else key
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"valid keys here: {', '.join(allowed)}"
                lines.append(f"unknown key {name!r}: {hint}")
            continue
        message = error.message if len(error.message) <= MESSAGE_LIMIT else error.message[:MESSAGE_LIMIT] + " ..."
        lines.append(f"{where or 'the config'}: {message}")
    return lines


def check_config(config: dict, schema_path) -> None:
    """Coerce ``config`` in place, then refuse it in a few lines if the schema does."""
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    coerce_to_schema(config, schema)
    errors = schema_errors(config, schema)
    if errors:
        raise ValueError("config fails validation against configs/schema.yaml:\n  " + "\n  ".join(errors)
                         + "\n(nested values typed on the command line are read as YAML; a --configfile spells "
                           "them the same way)")
