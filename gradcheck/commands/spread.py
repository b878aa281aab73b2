"""The spread study: every training replicate's DDPM crossed with every replicate's guide on one cell."""

from __future__ import annotations

from . import bootstrap_options, command, name_path_pairs, option


def pair_index(key: str) -> tuple[int, int]:
    """'D,G' -> (D, G), or a ValueError naming the bad pair."""
    try:
        ddpm, guide = (int(part) for part in key.split(","))
    except ValueError:
        raise ValueError(f"--cells takes D,G=PATH with two replicate numbers, got {key!r}") from None
    return ddpm, guide


@command("spread", help="where the replicates' spread comes from: every DDPM x guide pair under the judge")
@option("--cells", nargs="+", required=True,
        help="D,G=PATH: the samples file of DDPM replicate D guided by guide replicate G, for every pair")
@option("--judge", required=True, help="the judge's classifier file: it scores every sample")
@bootstrap_options("the variance components' intervals")
@option("--title", default="")
@option("--csv", required=True, help="output CSV: each variance component, its share and interval")
@option("--pairs-csv", required=True, help="output CSV: the judge's accuracy of every pair")
@option("--figure", required=True, help="output PNG")
def spread(a):
    import numpy as np

    from .. import spread as study
    from ..atomic import atomic_path
    from ..classifier import load_classifier, predict
    from ..data import images_to_tensor
    from ..samples import load_samples

    cells = {pair_index(key): path for key, path in name_path_pairs(a.cells, "--cells", "D,G")}
    ddpms, guides = sorted({d for d, _ in cells}), sorted({g for _, g in cells})
    missing = [f"{d},{g}" for d in ddpms for g in guides if (d, g) not in cells]
    if missing:
        raise ValueError(f"--cells must cross every DDPM with every guide; missing {' '.join(missing)}")
    judge = load_classifier(a.judge)[0]
    verdicts, settings = {}, None
    for (d, g), path in cells.items():
        samples = load_samples(path)
        if settings is not None and samples["record"]["settings"] != settings:
            raise ValueError(f"{path} is not the same cell as the others: its guidance settings differ")
        settings = samples["record"]["settings"]
        verdicts[d, g] = (predict(judge, images_to_tensor(samples["images"])) == settings["target"]).numpy()
    sizes = {len(v) for v in verdicts.values()}
    if len(sizes) != 1:
        raise ValueError(f"every pair needs the same number of samples, got {sorted(sizes)}")
    y = np.stack([np.stack([verdicts[d, g] for g in guides]) for d in ddpms]).astype(float)
    pairs, components = study.spread_table(y, a.n_boot, a.confidence)
    pairs["ddpm"], pairs["guide"] = [ddpms[i] for i in pairs.ddpm], [guides[i] for i in pairs.guide]
    for frame, path in ((components, a.csv), (pairs, a.pairs_csv)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    study.spread_figure(pairs, components, a.figure, a.title)
