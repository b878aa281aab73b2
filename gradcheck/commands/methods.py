"""Stage 7, the methods study: every training-free guidance method's row, and judge accuracy against compute."""

from __future__ import annotations

import logging

from . import bootstrap_options, command, option

log = logging.getLogger(__name__)


@command("methods-table", help="the methods study: one row per preset and stabiliser, and its figure")
@option("--cells", nargs="+", required=True,
        help="PRESET=STABILISER=SCALE=PATH of each cell's metrics JSON from evaluate (DPS: one per scale)")
@option("--own-scales", nargs="*", default=[], metavar="PRESET",
        help="the presets that list their own scales (methods.presets.<preset>.scales) instead of taking grid.scale")
@bootstrap_options("the paired change against the paper's x0-hat")
@option("--title", default="judge accuracy against compute, per training-free guidance method")
@option("--out", required=True, help="output CSV")
@option("--figure", required=True, help="output PNG")
def methods_table(a):
    from .. import methods_study as study

    frame = study.build_table(study.parse_cells(a.cells), a.own_scales, n_boot=a.n_boot, confidence=a.confidence)
    study.write_table(frame, a.out)
    study.methods_figure(frame, a.figure, a.title)
    log.info("methods study:\n%s", study.summary(frame))
