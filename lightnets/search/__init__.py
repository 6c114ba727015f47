"""Latency-aware architecture search over MixNet-style tables (MixConv, arXiv:1907.09595, Sec. 4):
the search space and a latency predictor for the user's target runtime. One module per idea:

    space.py    the space (MixNet-S's skeleton, per-row choices): sample, mutate, smallest, largest
    parts.py    a table cut into the parts that are timed: stem, MBConv blocks, head
    runner.py   a target ("eager", "onnxruntime:int8", ...) and the call that is timed on it
    qdq.py      int8 parts with quantized boundaries, as inside an int8 network (onnxruntime)
    timing.py   many calls timed in interleaved rounds (lightnets.profiling.measure_latency)
    latency.py  LatencyPredictor: the cached per-part table and its fit to whole networks
    check.py    check_predictor: predicted against measured on random networks of the space

The search itself (`lightnets search`), on Ray Tune through lightnets.compare's trials:

    evolution.py   RegularizedEvolution: candidates within the budget, a pure function of the
                   seed and the earlier trials' scores
    spec.py        OUT/search.json: what makes two runs the same search
    trials.py      SearchTrials: candidate files, trial configs, results (what Tune's Searcher asks)
    searching.py   search(): the checks, the trials on Ray Tune
    predictor.py   the search's predictor: its table kept in OUT, the budget check
    measure.py     end-to-end latency of candidates and zoo models on the target
    front.py       Pareto front, best, table and chart
    handback.py    front.json/.md/.png, best.toml and the closing comparison

Only torch is imported here; onnx and onnxruntime load when a target needs them, Ray inside
lightnets.compare.sweep, matplotlib inside the chart.
"""

from lightnets.search.check import ArchCheck, PredictorCheck, check_predictor
from lightnets.search.evolution import Candidate, RegularizedEvolution
from lightnets.search.front import choose_best, pareto_front
from lightnets.search.latency import LatencyPredictor
from lightnets.search.parts import Part, network_modules, network_parts
from lightnets.search.runner import LatencyTarget
from lightnets.search.searching import search
from lightnets.search.space import (
    MIXNET_S_SPACE,
    RowChoices,
    build_network,
    cheapen,
    contains,
    fit_space,
    largest,
    mutate,
    sample,
    smallest,
)

__all__ = [
    "MIXNET_S_SPACE",
    "ArchCheck",
    "Candidate",
    "LatencyPredictor",
    "LatencyTarget",
    "Part",
    "PredictorCheck",
    "RegularizedEvolution",
    "RowChoices",
    "build_network",
    "cheapen",
    "check_predictor",
    "choose_best",
    "contains",
    "fit_space",
    "largest",
    "mutate",
    "network_modules",
    "network_parts",
    "pareto_front",
    "sample",
    "search",
    "smallest",
]
