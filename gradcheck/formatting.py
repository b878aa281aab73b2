"""How numbers with intervals are written, in every table, page and log. Torch-free."""

from __future__ import annotations

import math


def interval_text(row, metric: str, fmt: str = "{:.1f}", factor: float = 1.0) -> str:
    """``row[metric]`` with its interval (``row[metric + '_low']``, ``row[metric + '_high']``), each times
    ``factor``, as ``'v [low, high]'``: every table, page and log writes intervals this way. '' where the
    value is missing; the value alone where its interval is."""
    def number(key):
        try:
            value = float(row.get(key)) if hasattr(row, "get") else float(row[key])
        except (TypeError, ValueError, KeyError):
            return None
        return None if math.isnan(value) else value * factor

    value, low, high = number(metric), number(f"{metric}_low"), number(f"{metric}_high")
    if value is None:
        return ""
    return fmt.format(value) if low is None or high is None else f"{fmt.format(value)} [{fmt.format(low)}, {fmt.format(high)}]"
