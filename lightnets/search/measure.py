"""End-to-end latency on the target after a search: the candidates that may be on the front, and
the zoo models the closing comparison may include.

Networks are compiled on the target as LatencyTarget does it (lightnets.search.runner) and timed
with the search's timer (lightnets.search.timing: interleaved rounds of
lightnets.profiling.measure_latency), a few at a time, once the trials are over. With one thread
the clock is the calling thread's CPU time, as for the predictor: on an idle core that is the
wall time, and other processes sharing the machine do not add to it; with more threads, the wall
time. The figures are cached in OUT/measured.json under the target, image size and
threads, so a re-run does not time them again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from lightnets.errors import LightnetsError
from lightnets.files import write_text
from lightnets.search.runner import LatencyTarget
from lightnets.search.timing import CHUNK, MIN_RUN_TIME, ROUNDS, time_calls

MEASURED_FILE = "measured.json"

# the zoo a searched network is compared with (registry name prefixes): MixNet-S, the
# MobileNetV2/V3 widths, ShuffleNetV2 widths, VGNets
ZOO_PREFIXES = ("mixnet_s", "mobilenet_v2_w", "mobilenet_v3_", "shufflenet_v2_", "vgnet_")


def zoo_models() -> list[str]:
    from lightnets import list_models

    return [n for n in list_models() if n == "mixnet_s" or n.startswith(ZOO_PREFIXES[1:])]


def zoo_maker(name: str, img_size: int, num_classes: int) -> Callable[[], tuple]:
    """(network, example input) of a zoo model as `lightnets compare` trains it (the stride-1
    stem for images of 64 px or less)."""

    def make():
        import lightnets
        from lightnets.checkpoints import wants_small_input

        kwargs = {"small_input": True} if wants_small_input(img_size) else {}
        model = lightnets.create_model(name, num_classes=num_classes, **kwargs).eval()
        return model, torch.randn(1, 3, img_size, img_size)

    return make


def measure_latencies(
    makers: dict[str, Callable[[], tuple]],
    target: str,
    img_size: int,
    threads: int,
    out: Path | None = None,
    *,
    rounds: int = ROUNDS,
    min_run_time: float = MIN_RUN_TIME,
) -> dict[str, float | None]:
    """{name: ms, the fastest of `rounds` interleaved rounds as the predictor's} of each network
    `makers[name]()` -> (module, example) on `target`; None for one the target cannot compile (an
    export or runtime error). Cached in OUT/measured.json (`out` None: not cached)."""
    path = None if out is None else Path(out) / MEASURED_FILE
    try:
        cache = json.loads(path.read_text()) if path is not None else {}
    except (FileNotFoundError, ValueError):
        cache = {}
    key = f"{target}@{img_size}px:{threads}t:{'cpu' if threads == 1 else 'wall'}:min{rounds}"
    known = cache.setdefault(key, {})
    todo = [name for name in makers if name not in known]
    parsed = LatencyTarget.parse(target)
    for start in range(0, len(todo), CHUNK):
        calls = {}
        for name in todo[start : start + CHUNK]:
            module, example = makers[name]()
            try:
                calls[name] = parsed.compile(module, example, threads)
            except (LightnetsError, RuntimeError, ValueError, NotImplementedError) as err:
                # a zoo model the runtime's exporter or kernels do not take (ONNX Runtime's and
                # torch.onnx's errors are RuntimeErrors); anything else is a bug
                known[name] = None
                known[f"{name}:error"] = " ".join(str(err).split())[:200]
        clock = "cpu" if threads == 1 else "wall"  # as the predictor (searching.predictor_kwargs)
        timed = time_calls(calls, threads, rounds=rounds, min_run_time=min_run_time, clock=clock)
        known.update({name: t.min_ms for name, t in timed.items()})
        if path is not None:
            write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    return {name: known.get(name) for name in makers}
