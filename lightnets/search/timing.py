"""Timing many small calls on a shared CPU: interleaved rounds of lightnets' own latency timer.

Every round times every call once (lightnets.profiling.measure_latency: warm-up, then
torch.utils.benchmark's blocked_autorange, median over blocks); a call's latency is the median of
its rounds, its `min_ms` the fastest round. Interleaving spreads a busy neighbour's burst over
all calls instead of letting it land on one; the median of rounds drops that burst, the fastest
round drops all but the least contended one. Many calls are timed a chunk at a time, each chunk
interleaved.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from lightnets.errors import ConfigError
from lightnets.search.runner import Call, LatencyTarget

# a call's seconds per round; blocks are 1-10 ms at batch 1, so >= 10 blocks per round
MIN_RUN_TIME = 0.1
ROUNDS = 5  # the fastest of 5 predicted 32 px int8 best (docs/search.md)
RETRIES = 2  # re-timings of a round that other processes contended (profiling.timing.contention)
CHUNK = 8  # calls compiled and interleaved together: a 224 px block's 16 copies take ~100 MB


# "wall": elapsed time, what a user waits. "cpu": the calling thread's CPU time, which leaves out
# the time other processes hold the core; equal to the wall time of a single-threaded call on an
# idle core (the runtime computes in the calling thread), so only for 1 thread. On this project's
# shared 2-core machine, wall-time medians of one network moved 20-40% between runs.
CLOCKS = ("wall", "cpu")


def clock_timer(clock: str, threads: int) -> Callable[[], float]:
    """The clock function of `clock` (CLOCKS); ConfigError for "cpu" with more than 1 thread."""
    if clock not in CLOCKS:
        raise ConfigError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and threads != 1:
        raise ConfigError("clock 'cpu' times one thread; use threads=1 or clock 'wall'")
    return time.thread_time if clock == "cpu" else timeit.default_timer


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: median and fastest over interleaved rounds."""

    median_ms: float
    min_ms: float
    rounds: int
    contended: int = 0  # rounds still contended after RETRIES re-timings

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def time_calls(
    calls: dict[str, Call],
    threads: int,
    *,
    rounds: int = ROUNDS,
    min_run_time: float = MIN_RUN_TIME,
    warmup: int = 3,
    clock: str = "wall",
) -> dict[str, Timing]:
    """The latency of each call, from `rounds` interleaved rounds (see the module docstring).

    A round that other processes contended is timed again, up to RETRIES times, and the fastest
    attempt kept: contention only ever adds time. `clock` is "wall" or "cpu" (CLOCKS)."""
    from lightnets.profiling.timing import contention, measure_latency

    timer = clock_timer(clock, threads)

    token = torch.zeros(1)  # measure_latency reads the batch from its input; calls hold theirs
    medians: dict[str, list[float]] = {name: [] for name in calls}
    contended = dict.fromkeys(calls, 0)
    for r in range(rounds):
        for name, call in calls.items():
            attempts = []
            for attempt in range(RETRIES + 1):
                latency = measure_latency(
                    lambda _, call=call: call(),
                    token,
                    threads=threads,
                    warmup=warmup if r == attempt == 0 else 1,
                    min_run_time=min_run_time,
                    timer=timer,
                )
                attempts.append(1e3 * latency.median_s)
                busy = None if clock == "cpu" else contention(latency.other_cores, threads)
                if busy is None:
                    break
            contended[name] += busy is not None
            medians[name].append(min(attempts))
    return {
        name: Timing(statistics.median(ms), min(ms), rounds, contended[name])
        for name, ms in medians.items()
    }


def time_modules(
    target: LatencyTarget,
    items: Iterable[tuple[str, Callable[[], tuple]]],
    threads: int,
    *,
    rounds: int = ROUNDS,
    min_run_time: float = MIN_RUN_TIME,
    chunk: int = CHUNK,
    clock: str = "wall",
) -> dict[str, Timing]:
    """Compile each (name, make) on `target` (`make()` -> (module, example input, copies,
    inner): LatencyTarget.compile's arguments) and time them in interleaved rounds, `chunk` at
    a time (all at once would hold every part's copies in memory)."""
    items, timings = list(items), {}
    for start in range(0, len(items), chunk):
        calls = {}
        for name, make in items[start : start + chunk]:
            module, example, copies, inner = make()
            calls[name] = target.compile(module, example, threads, copies, inner)
        timings.update(
            time_calls(calls, threads, rounds=rounds, min_run_time=min_run_time, clock=clock)
        )
    return timings
