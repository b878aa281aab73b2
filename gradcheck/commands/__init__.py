"""The ``gradcheck`` subcommands, one module per workflow stage, each option written above its handler.

A handler is decorated with ``@command`` and its ``@option``s, read top-down as the command's
``--help`` lists them; an option that sets a settings class's field takes its default from
gradcheck/settings.py (``setting=(Class, "field")``), so the CLI without flags runs what the default
run runs. Handlers stay thin: the work is the library's. No module here imports torch at import
time, so the figure commands start without paying for it.
"""

from __future__ import annotations

import argparse

from ..settings import default


def command(name: str, help: str):
    """Make ``func(args)`` the handler of subcommand ``name``."""
    def wrap(func):
        func.command = (name, help)
        func.__dict__.setdefault("options", [])
        return func
    return wrap


def option(*flags: str, setting: tuple | None = None, **kwargs):
    """An argparse option of the command below; ``setting=(Class, "field")`` takes its default from settings."""
    def wrap(func):
        if setting is not None:
            kwargs.setdefault("default", default(*setting))
        func.__dict__.setdefault("options", []).insert(0, (flags, setting, kwargs))  # decorators apply bottom-up
        return func
    return wrap


def bootstrap_options(what: str):
    """``--n-boot`` and ``--confidence`` of the command below (metrics.n_boot and metrics.confidence's defaults):
    ``what`` the intervals are of, for the help."""
    from ..settings import MetricsSettings

    def wrap(func):
        func = option("--confidence", type=confidence, setting=(MetricsSettings, "confidence"),
                      help=f"confidence level of {what}")(func)
        return option("--n-boot", type=positive, setting=(MetricsSettings, "n_boot"),
                      help=f"bootstrap replicates of {what}")(func)
    return wrap


def register(sub: argparse._SubParsersAction, module) -> None:
    """Add every command of a stage module, in the order the module defines them."""
    for func in vars(module).values():
        if callable(func) and hasattr(func, "command"):
            name, help_text = func.command
            parser = sub.add_parser(name, help=help_text, description=help_text)
            for flags, setting, kwargs in func.options:
                parser.add_argument(*flags, **kwargs).setting = setting
            parser.set_defaults(func=func)


# --- argument types ----------------------------------------------------------------------------


def boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def steps(text: str) -> int | None:
    """A positive number of sampling steps, or 'all' (None): every training timestep."""
    return None if text.lower() == "all" else positive(text)


def optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null") else float(text)


def confidence(text: str) -> float:
    """A confidence level strictly between 0 and 1, refused before any sampling or bootstrap."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (e.g. 0.95), got {value}")
    return value


def name_path_pairs(specs: list[str], flag: str, name: str = "NAME") -> list[tuple[str, str]]:
    """``NAME=PATH`` arguments as (name, path) pairs, or a ValueError naming the flag and the bad one."""
    pairs = []
    for spec in specs:
        key, _, path = spec.partition("=")
        if not key or not path:
            raise ValueError(f"{flag} takes {name}=PATH, got {spec!r}")
        pairs.append((key, path))
    return pairs


def json_argument(text: str, flag: str):
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not JSON: {exc}") from exc


DEVICE_HELP = "auto | cpu | cuda[:N]"
