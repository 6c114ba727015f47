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

`import lightnets.compare` loads neither Ray, matplotlib nor torch (the names below load on first
use).
"""

from lightnets._lazy import lazy_names

# public name -> the module that defines it; loaded on first use (PEP 562), so that a trial's Ray
# worker, which imports lightnets.compare.sweep, trials and epochs, does not load torch
_API = {
    "CONTRADICTS": "lightnets.compare.stats",
    "INCONCLUSIVE": "lightnets.compare.stats",
    "SCALES": "lightnets.compare.studies",
    "STUDIES": "lightnets.compare.studies",
    "SUPPORTS": "lightnets.compare.stats",
    "WITHIN_NOISE": "lightnets.compare.stats",
    "compare": "lightnets.compare.comparison",
    "study": "lightnets.compare.studies",
}
__all__ = list(_API)


__getattr__, __dir__ = lazy_names(__name__, _API, globals())
