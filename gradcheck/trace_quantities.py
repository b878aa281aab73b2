"""The gradient trace's per-step quantities: one registry that the sampler, the samples file, the
figures, the report's captions and the results page all read. Torch-free (the plan imports it).

Adding a quantity: an entry here, and the line in ``guidance.guided_sample`` that measures it. The
samples file, the trace figure ``results/figures/trace_<name>.png`` (where ``figure``), its report
caption and the results page's caption then follow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TraceQuantity:
    name: str
    description: str                  # one sentence: what is measured (figure captions, the results page)
    axis: str                         # the y-axis label
    title: str = ""                   # the figure's title ("" for quantities with no trace figure)
    scale: str = "linear"             # the y axis: linear or log
    limits: tuple[float, float] | None = None
    zero_line: bool = False           # a cosine: 0 (orthogonal) drawn as a reference line
    figure: bool = True               # drawn as results/figures/trace_<name>.png
    since: str | None = None          # results format that added it; older samples files read it as NaN


QUANTITIES = (
    TraceQuantity("cosine", "The paper's stability (eq. 5): the cosine between consecutive steps' applied guidance "
                  "directions", "cos(g_t, g_t+1)", limits=(-0.3, 1.05), zero_line=True, figure=False),
    TraceQuantity("grad_norm", "Norm of the raw classifier gradient per sampling step, before any stabiliser or "
                  "normalisation", "raw ||grad log p(y | x_in)||", "raw classifier-gradient norm over time",
                  scale="log"),
    TraceQuantity("term_norm", "How far the guidance moved the mean per sampling step, ||s sigma_t^2 g||",
                  "||guidance shift||", scale="log", figure=False),
    TraceQuantity("eps_cosine", "Cosine between the applied guidance direction and the DDPM's noise prediction per "
                  "sampling step; negative values point along -eps, where the denoiser already moves",
                  "cos(applied guidance, eps)", "cosine between the guidance direction and eps over time",
                  limits=(-1.05, 1.05), zero_line=True),
    TraceQuantity("judge_confidence", "The independent judge's confidence in the target on the clipped x0-hat per "
                  "sampling step (at the judge's steps): when the target becomes recognisable",
                  "judge's p(y | x0_hat)", "independent judge's confidence on x0-hat over time",
                  limits=(-0.02, 1.02)),
    TraceQuantity("informativeness", "Cosine between the applied guidance direction and the noise-aware (robust) "
                  "classifier's gradient at the same x_t, at the judge's steps",
                  "cos(applied guidance, robust grad)",
                  "cosine between the applied guidance and the robust classifier's gradient over time",
                  limits=(-1.05, 1.05), zero_line=True, since="2026-12-02"),
    TraceQuantity("staleness", "Cosine between the applied direction and this step's raw classifier gradient: 1 "
                  "without a stabiliser, low where the step follows the stabiliser's memory of earlier gradients "
                  "rather than today's", "cos(applied direction, raw gradient)",
                  "staleness: the applied direction against this step's own gradient",
                  limits=(-1.05, 1.05), zero_line=True, since="2026-12-07"),
    TraceQuantity("spread", "||d||_1 / (sqrt(n) ||d||_2) of the applied direction d: 1 for a sign-like step whose "
                  "entries all have the same size, 1/sqrt(n) for a step on one pixel",
                  "||d||_1 / (sqrt(n) ||d||_2)", "spread of the applied direction over the pixels",
                  limits=(0, 1.02), since="2026-12-07"),
)


# Read at call time by the samples file and the figures (a quantity added to QUANTITIES is included):
def by_name() -> dict[str, TraceQuantity]:
    return {q.name: q for q in QUANTITIES}


def stored() -> tuple[str, ...]:
    """The per-step arrays of every samples file."""
    return tuple(q.name for q in QUANTITIES)


def optional() -> tuple[str, ...]:
    """Those absent from samples files written before they were added (read as NaN)."""
    return tuple(q.name for q in QUANTITIES if q.since is not None)


BY_NAME, STORED = by_name(), stored()
DRAWN = tuple(q.name for q in QUANTITIES if q.figure)  # results/figures/trace_<name>.png (the plan's, at parse time)
