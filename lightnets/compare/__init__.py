"""Which network is best on *your* data, and do the papers' claims hold there.

`compare(models, data, ...)` trains every model x seed with the same recipe, budget and data,
scheduled by Ray Tune (one trial = one `lightnets train` run directory), then measures params,
MACs and latency and returns one table: accuracy as mean ± std over seeds with the per-seed
values, and differences no larger than the seeds' spread called "within noise", not ranked.
`study(name, data, scale=...)` runs one of the papers' ablations (STUDIES) and says whether the
run supports, contradicts, or is inconclusive about each claim.

    stats.py        mean, spread, "within noise", verdicts (pure)
    spec.py         OUT/compare.json: what makes two runs the same comparison
    trials.py       one trial = one run dir: status, train flags, running and reading one; the
                    trial's process is `lightnets train` (enter_trial)
    placement.py    Placement: where trials run on Ray and what each reserves (compare, search)
    sweep.py        Ray Tune: cluster connection, retries, events (the only module importing ray)
    results.py      costs, the table, the charts (matplotlib inside the functions)
    data.py         data checks and the images-per-class subset
    variants.py     study networks beyond the registry (width, exponential split, dilation)
    comparison.py   compare(): the checks (Comparison), the trials, their results
    studies.py      the studies, their scales and claims; study()

`import lightnets.compare` loads neither Ray nor matplotlib.
"""

from lightnets.compare.comparison import compare
from lightnets.compare.stats import CONTRADICTS, INCONCLUSIVE, SUPPORTS, WITHIN_NOISE
from lightnets.compare.studies import SCALES, STUDIES, study

__all__ = [
    "CONTRADICTS",
    "INCONCLUSIVE",
    "SCALES",
    "STUDIES",
    "SUPPORTS",
    "WITHIN_NOISE",
    "compare",
    "study",
]
