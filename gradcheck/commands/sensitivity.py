"""Stage 6, the sensitivity study: each setting's paired effect on every studied cell."""

from __future__ import annotations

from ..settings import HEADLINE, PAPER_HEADLINE_ACCURACY, MetricsSettings
from . import command, json_argument, name_path_pairs, option


@command("sensitivity", help="the sensitivity study: each setting's paired effect on every cell")
@option("--metrics", nargs="+", required=True,
        help="VARIANT=PATH of per-cell JSON files from evaluate; one file may serve several variants")
@option("--changes-json", required=True,
        help="JSON: every variant -> the settings it changes, e.g. {\"default\": {}, ...}")
@option("--combined", help="the variant that changes every setting at once")
@option("--n-boot", type=int, setting=(MetricsSettings, "n_boot"), help="bootstrap replicates of the paired changes")
@option("--title", default="")
@option("--csv", required=True, help="output CSV")
@option("--figure", required=True, help="output PNG")
def sensitivity(a):
    from .. import sensitivity as study
    from ..atomic import atomic_path
    from ..plots import sensitivity_figure

    entries = name_path_pairs(a.metrics, "--metrics", "VARIANT")
    frame = study.build_table(entries, json_argument(a.changes_json, "--changes-json"), a.combined, n_boot=a.n_boot)
    with atomic_path(a.csv) as tmp:
        frame.to_csv(tmp, index=False)
    sensitivity_figure(frame, HEADLINE, PAPER_HEADLINE_ACCURACY, a.figure, a.title)
