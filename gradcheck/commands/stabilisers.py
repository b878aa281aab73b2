"""The stabiliser study: ADAM over a grid of betas, nrCG's EMA and the named readings against no stabiliser."""

from __future__ import annotations

import logging

from . import bootstrap_options, command, option

log = logging.getLogger(__name__)


@command("stabilisers-table", help="the stabiliser study: one row per cell, its paired change against none, "
                                   "the heatmap and the answers")
@option("--metrics", nargs="+", required=True, help="each study cell's metrics JSON from evaluate")
@bootstrap_options("the paired changes and the correlations over cells")
@option("--title", default="stabilisers: judge accuracy and its change against none over ADAM's betas")
@option("--out", required=True, help="output CSV")
@option("--figure", required=True, help="output PNG: the heatmaps")
@option("--answers", required=True, help="output Markdown: the study's answers")
def stabilisers_table(a):
    from .. import stabilisers as study
    from ..atomic import write_text

    frame = study.build_table(a.metrics, n_boot=a.n_boot, confidence=a.confidence)
    study.write_table(frame, a.out)
    study.heatmap_figure(frame, a.figure, a.title)
    text = study.answers(frame, n_boot=a.n_boot, confidence=a.confidence)
    write_text(a.answers, text)
    log.info("%s", text)
