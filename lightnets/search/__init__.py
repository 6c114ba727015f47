"""Latency-aware architecture search over MixNet-style tables (MixConv, arXiv:1907.09595, Sec. 4):
the search space and a latency predictor for the user's target runtime. One module per idea:

    space.py    the space (MixNet-S's skeleton, per-row choices): sample, mutate, smallest, largest
    parts.py    a table cut into the parts that are timed: stem, MBConv blocks, head
    runner.py   a target ("eager", "onnxruntime:int8", ...) and the call that is timed on it
    qdq.py      int8 parts with quantized boundaries, as inside an int8 network (onnxruntime)
    timing.py   many calls timed in interleaved rounds (lightnets.profiling.measure_latency)
    latency.py  LatencyPredictor: the cached per-part table and its fit to whole networks
    check.py    check_predictor: predicted against measured on random networks of the space

Only torch is imported here; onnx and onnxruntime load when a target needs them.
"""

from lightnets.search.check import ArchCheck, PredictorCheck, check_predictor
from lightnets.search.latency import LatencyPredictor
from lightnets.search.parts import Part, network_modules, network_parts
from lightnets.search.runner import LatencyTarget
from lightnets.search.space import (
    MIXNET_S_SPACE,
    RowChoices,
    build_network,
    contains,
    largest,
    mutate,
    sample,
    smallest,
)

__all__ = [
    "MIXNET_S_SPACE",
    "ArchCheck",
    "LatencyPredictor",
    "LatencyTarget",
    "Part",
    "PredictorCheck",
    "RowChoices",
    "build_network",
    "check_predictor",
    "contains",
    "largest",
    "mutate",
    "network_modules",
    "network_parts",
    "sample",
    "smallest",
]
