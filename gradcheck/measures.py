"""What a cell is measured by: one registry that Table 1, the findings, the studies' tables and the
results page read. Torch-free.

Adding a measure: an entry here, and the line of ``evaluate.cell_metrics`` that computes it (as
``name``, ``name_low``, ``name_high``; per sample too where paired verdicts compare it). Table 1's
CSV, Markdown and LaTeX columns and the findings' wording then follow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    name: str                       # its columns: name, name_low, name_high (metrics JSON, Table 1's CSV)
    heading: str                    # Table 1's rendered column
    description: str                # how the findings name it
    factor: float = 1.0             # shown = factor x stored (100: a share in percent)
    digits: int = 3                 # decimals shown
    higher_is_better: bool | None = None
    per_sample: str | None = None   # its key among a cell's per-sample values (paired comparisons), if any
    since: str | None = None        # the results format that added it; older metrics files read it as NaN

    def fmt(self) -> str:
        return f"{{:.{self.digits}f}}"


MEASURES = (
    Measure("accuracy", "accuracy (guide) %", "accuracy under the guiding classifier (%)", 100, 1, True, "guide"),
    Measure("judge_accuracy", "accuracy (judge) %", "accuracy under the independent judge (%)", 100, 1, True, "judge"),
    Measure("fooled", "fooled %", "fooled: the guide sees the target, the judge does not (%)", 100, 1, False),
    Measure("fid", "FID", "FID", 1, 2, False),
    Measure("kid", "KID x1000", "KID x 1000", 1000, 2, False),
    Measure("cosine_mean", "cosine", "consecutive-step cosine, all steps", 1, 3, True, "cosine"),
    Measure("cosine_late", "cosine, last quarter", "consecutive-step cosine, last quarter of the steps", 1, 3, True,
            "cosine_late"),
    Measure("informativeness", "informativeness", "cosine with the robust classifier's gradient", 1, 3, None,
            "informativeness"),
    Measure("staleness", "staleness", "cosine of the applied direction with the step's own gradient", 1, 3, None,
            "staleness", since="2026-12-07"),
    Measure("spread", "spread", "||d||_1 / (sqrt(n) ||d||_2) of the applied direction", 1, 3, None, "spread",
            since="2026-12-07"),
)
BY_NAME = {m.name: m for m in MEASURES}


def names() -> list[str]:
    """Every measure's name, in Table 1's order (read at call time: a measure added later is included)."""
    return [m.name for m in MEASURES]
