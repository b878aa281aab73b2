"""Every default and allowed value has one home, gradcheck/settings.py, and the schema, config.yaml and
the CLI agree with it; the package has no import circle and the CLI's functions stay short."""

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from gradcheck import settings
from gradcheck.cli import build_parser
from config_loading import config_fields, load_config, lookup
from gradcheck.settings import default

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "configs/schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
MISSING = object()


def schema_node(key):
    """The schema's property for dotted ``key``, with $refs resolved and merged."""
    node = SCHEMA
    for part in key.split("."):
        node = node["properties"][part]
    while "$ref" in node:
        node = {**SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def commands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices


@pytest.mark.parametrize("key, cls, name, value", list(config_fields()), ids=lambda x: x if isinstance(x, str) else "")
def test_schema_and_config_yaml_agree_with_the_settings_default(key, cls, name, value):
    node = schema_node(key)
    if "default" in node:
        assert node["default"] == value, f"configs/schema.yaml's default of {key}"
    configured = lookup(CONFIG, key, MISSING)
    if configured is not MISSING:  # config.yaml is the default run: its values are the defaults
        configured = None if configured == "all" else configured  # sampling.steps: 'all' is None, every step
        assert (list(configured) if isinstance(configured, list) else configured) == value, f"config.yaml's {key}"


def test_every_schema_default_of_a_settings_key_is_checked():
    """A schema default without a settings field would be a second home: every one is a field's, or the
    workflow's own (where no class reads it)."""
    keys = {key for key, *_ in config_fields()}
    workflow_only = {"device", "replicates", "replicate_ddpm", "threads_per_job", "data.source", "data.folder", "ddpm.pretrained",
                     "classifiers.judge_architecture", "classifiers.features_architecture", "classifiers.seeds.features",
                     "guidance"}

    def defaults(node, prefix=""):
        for name, child in node.get("properties", {}).items():
            key = f"{prefix}{name}"
            if "default" in child and "properties" not in child:
                yield key
            yield from defaults(child, key + ".")

    assert set(defaults(SCHEMA)) - keys - workflow_only == set()
    assert schema_node("classifiers.judge_architecture")["default"] == settings.JUDGE_ARCHITECTURE
    assert schema_node("classifiers.features_architecture")["default"] == settings.FEATURES_ARCHITECTURE


@pytest.mark.parametrize("key, allowed", [
    ("data.source", settings.DATA_SOURCES), ("ddpm.lr_schedule", settings.LR_SCHEDULES),
    ("ddpm.loss_weighting", settings.LOSS_WEIGHTINGS), ("ddpm.precision", settings.PRECISIONS),
    ("classifiers.judge_architecture", settings.ARCHITECTURES),
    ("classifiers.features_architecture", settings.ARCHITECTURES),
    ("guidance.objective", settings.OBJECTIVES), ("guidance.unet_dtype", settings.UNET_DTYPES),
    ("metrics.fid_features", settings.FEATURE_SOURCES),
])
def test_schema_enums_are_the_settings_allowed_values(key, allowed):
    assert tuple(schema_node(key)["enum"]) == allowed


def test_schema_lists_of_names_are_the_settings_allowed_values():
    assert tuple(schema_node("data.classes")["items"]["enum"]) == settings.BALLS
    assert tuple(schema_node("grid.classifiers")["items"]["enum"]) == settings.GUIDES
    assert schema_node("grid.stabilisers")["items"]["pattern"] == f"^({settings.STABILISER_PATTERN})$"
    for key in ("methods.stabilisers", "ablation.stabilisers"):
        assert schema_node(key)["items"]["pattern"] == f"^({settings.STABILISER_PATTERN})$", key
    # the methods study's presets name a method of settings.METHODS; the study's stabiliser presets, the papers'
    presets = schema_node("methods.presets")["additionalProperties"]["properties"]
    assert tuple(presets["method"]["enum"]) == tuple(settings.METHODS)
    assert schema_node("stabiliser_study.presets")["items"]["enum"] == list(settings.STABILISER_PRESETS)


def test_cli_options_take_defaults_and_choices_from_settings():
    linked = 0
    for name, parser in commands().items():
        for action in parser._actions:
            setting = getattr(action, "setting", None)
            if setting is not None:
                linked += 1
                assert action.default == default(*setting), f"{name} {action.option_strings}"
    assert linked >= 40


# The options the rules fill from a config section: without flags, each command runs the default run's job.
SECTION_FLAGS = {
    "train-ddpm": ("ddpm", {k: k for k in CONFIG["ddpm"]}),
    "train-classifier": ("classifiers", {k: k for k in ("epochs", "batch_size", "lr", "patience")}),
    "sample": ("guidance", {k: k for k in CONFIG["guidance"]}),
    "make-data": ("data", {"image_size": "size", "train_per_class": "train_per_class",
                           "val_per_class": "val_per_class", "seed": "seed"}),
}


@pytest.mark.parametrize("command", SECTION_FLAGS)
def test_cli_defaults_are_the_default_runs_values(command):
    section, dests = SECTION_FLAGS[command]
    actions = {a.dest: a for a in commands()[command]._actions}
    for key, dest in dests.items():
        value = CONFIG[section][key]
        assert actions[dest].default == value, f"{command} --{dest}: config.yaml's {section}.{key} is {value}"
    sampling = {a.dest: a.default for a in commands()["sample"]._actions}
    for key in ("num_samples", "batch_size", "judge_every", "seeds"):
        assert sampling[key] == CONFIG["sampling"][key]


def _allowed_tuples():
    return {tuple(v) for k, v in vars(settings).items() if k.isupper() and isinstance(v, tuple) and len(v) > 1
            and all(isinstance(x, str) for x in v)}


def test_no_module_restates_a_list_of_allowed_values():
    restated = []
    for path in sorted((ROOT / "gradcheck").rglob("*.py")):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) > 1 and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                if tuple(e.value for e in node.elts) in _allowed_tuples():
                    restated.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert restated == []


def _imports(path: Path, package: str) -> set[str]:
    """The gradcheck modules ``path`` imports, at the top or inside functions."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        module = module.rsplit(".", 1)[0] + "._"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
            if base.startswith(package):
                # `from . import data` imports a module, `from .x import name` the module x
                names = [f"{base}.{a.name}" for a in node.names] if not node.module else [base]
                found |= set(names)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(package)}
    return found


def test_no_import_circle_in_the_package():
    modules = {}
    for path in (ROOT / "gradcheck").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = _imports(path, "gradcheck")
    graph = {m: {d for d in deps if d in modules and d != m} for m, deps in modules.items()}
    assert len(graph) > 30 and graph["gradcheck.ddpm"] >= {"gradcheck.settings"}

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for m in sorted(graph) if (c := cycle_from(m))]
    assert cycles == [], " -> ".join(cycles[0])


def test_no_module_of_the_package_imports_snakemake():
    """The workflow drives the package, never the other way round (docs/design.md)."""
    importers = sorted(path.name for path in (ROOT / "gradcheck").rglob("*.py") if _imports(path, "snakemake"))
    assert importers == []


def test_no_cli_function_is_longer_than_60_lines():
    long = []
    for path in [ROOT / "gradcheck/cli.py", *sorted((ROOT / "gradcheck/commands").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - first + 1 > 60:
                    long.append(f"{path.name}:{node.name} ({node.end_lineno - first + 1} lines)")
    assert long == []


def test_load_config_merges_overlays_as_snakemake_and_fills_schema_defaults():
    cfg = load_config(ROOT / "configs/clipping.yaml")
    assert cfg["replicates"] == 3 and cfg["sampling"]["seeds"] == [0]
    assert cfg["ddpm"]["steps"] == CONFIG["ddpm"]["steps"]  # from config.yaml, not replaced by the overlay
    assert cfg["metrics"]["fit_accuracy"] == default(settings.MetricsSettings, "fit_accuracy")  # a schema default
    assert load_config({"grid": {"scale": 2}})["grid"] == {**CONFIG["grid"], "scale": 2}


def test_settings_refuse_what_cannot_work_naming_the_field():
    with pytest.raises(ValueError, match="attention has 2 flags but block_out_channels has 3 levels"):
        settings.UNetConfig((32, 64, 96), 1, (False, False))
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'; choose one of constant, cosine"):
        settings.DDPMTrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="scale_betas needs T above 20"):
        settings.DDPMTrainConfig(num_train_timesteps=20)
    with pytest.raises(ValueError, match="unknown stabiliser 'ema1.5'"):
        settings.GuidanceSettings(stabiliser="ema1.5")
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        settings.MetricsSettings(confidence=95)
    assert dataclasses.asdict(settings.GuidanceSettings())["clip_x0"] is True  # the paper's reading
