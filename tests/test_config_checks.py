"""Config checks before the schema's: command-line strings typed by the schema, short errors naming the key."""

from pathlib import Path

import pytest
import yaml

from gradcheck.config_checks import check_config, coerce_to_schema, schema_errors

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/schema.yaml").read_text())
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "configs/schema.yaml"
CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())


def test_nested_command_line_values_take_the_schemas_types():
    # what Snakemake hands over for --config grid='{scale: 3}' ddpm='{attention: [false, true, true]}'
    cfg = {"grid": {"scale": "3"}, "replicates": "2", "ddpm": {"attention": ["false", "true"]},
           "experiment": "007", "guidance": {"clip_x0": "false"}}
    coerce_to_schema(cfg, SCHEMA)
    assert cfg == {"grid": {"scale": 3}, "replicates": 2, "ddpm": {"attention": [False, True]},
                   "experiment": "007", "guidance": {"clip_x0": False}}  # a string stays one where the schema wants it
    assert coerce_to_schema({"grid": {"scale": "big"}}, SCHEMA) == {"grid": {"scale": "big"}}  # left for the schema


def test_a_misspelt_key_is_named_with_the_nearest_valid_one_in_a_few_lines():
    cfg = {**CONFIG, "replicats": 3, "ddpm": {**CONFIG["ddpm"], "stepz": 10}}
    errors = schema_errors(cfg, SCHEMA)
    assert errors == ["unknown key 'replicats': did you mean 'replicates'?",
                      "unknown key 'ddpm.stepz': did you mean 'steps'?"]
    with pytest.raises(ValueError) as info:
        check_config(cfg, SCHEMA_PATH)
    assert len(str(info.value).splitlines()) <= 5


def test_a_wrong_value_is_refused_naming_its_key():
    cfg = {**CONFIG, "grid": {**CONFIG["grid"], "scale": -1}}
    assert schema_errors(cfg, SCHEMA) == ["grid.scale: -1 is less than the minimum of 0"]
    assert schema_errors(CONFIG, SCHEMA) == []
