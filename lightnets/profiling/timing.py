"""Latency, and whether a latency can be trusted.

- latency: torch.utils.benchmark.Timer.blocked_autorange after explicit warm-up calls, at a fixed
  thread count; the median and interquartile range over blocks of calls. The benchmark timer
  synchronizes the accelerator before each timestamp, so CUDA times are complete.
- noise: a measurement is flagged when its IQR is above SPREAD_LIMIT of its median, or when other
  processes used cores the timed threads needed while it ran (lightnets.cpu.CpuLoad, from Linux
  /proc/stat: the machine's busy time minus this process's CPU time). On a shared 2-core machine
  a busy neighbour inflated batch-1 latencies 30-120x with a small spread, so the spread alone
  does not catch it.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils import benchmark

# the CPU helpers live in lightnets.cpu; re-exported here, where they were first
from lightnets.cpu import (  # noqa: F401
    BUSY_SLACK_CORES,
    CpuLoad,
    contention,
    cpu_ticks,
    default_threads,
    torch_threads,
    wait_for_idle_cpu,
)
from lightnets.errors import ConfigError

MIN_BLOCKS_FOR_IQR = 4  # a spread needs a few samples; a slow call gives only one or two blocks
SPREAD_LIMIT = 0.2  # IQR / median above which a latency is reported as noisy


# ---------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class Latency:
    """Seconds per call of a batch: median and interquartile range over the timed blocks."""

    median_s: float
    iqr_s: float
    batch: int
    runs: int  # timed calls, after the warm-up
    warmup: int
    threads: int
    blocks: int = 1  # timed blocks of `runs // blocks` calls; the median and IQR are over blocks
    other_cores: float | None = None  # cores used by other processes while timing (CpuLoad)

    @property
    def throughput(self) -> float:
        """Images per second at this batch size."""
        return self.batch / self.median_s

    def noise(self, cpus: int | None = None) -> str | None:
        """Why this latency is probably inflated, or None: an IQR above SPREAD_LIMIT of the
        median, or other processes using cores the timed threads needed (see `contention`)."""
        reasons = []
        if self.blocks >= MIN_BLOCKS_FOR_IQR and self.iqr_s > SPREAD_LIMIT * self.median_s:
            reasons.append(f"IQR {100 * self.iqr_s / self.median_s:.0f}% of the median")
        busy = contention(self.other_cores, self.threads, cpus)
        return "; ".join([*reasons, busy] if busy else reasons) or None


def measure_latency(
    fn: Callable[[Tensor], object],
    x: Tensor,
    *,
    threads: int | None = None,
    warmup: int = 2,
    min_run_time: float = 0.25,
    timer: Callable[[], float] = timeit.default_timer,
) -> Latency:
    """Time `fn(x)` with torch.utils.benchmark at a fixed number of intra-op threads.

    `warmup` untimed calls come first (allocator, oneDNN primitive caches, lazy init);
    blocked_autorange then picks a block size and repeats blocks for at least `min_run_time`
    seconds. A call slower than `min_run_time` is timed once more after its block-size probe.
    The load other processes put on the CPU meanwhile is recorded (Latency.other_cores).
    `timer` is the clock; `time.thread_time` (this thread's CPU time) gives the latency of a
    single-threaded call without the time other processes took the core away.
    """
    if warmup < 0:
        raise ConfigError(f"warmup must be >= 0, got {warmup!r}")
    if min_run_time <= 0:
        raise ConfigError(f"min_run_time must be positive, got {min_run_time!r}")
    threads = threads or default_threads()
    with torch_threads(threads):
        for _ in range(warmup):
            fn(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
    bench = benchmark.Timer(
        stmt="fn(x)", globals={"fn": fn, "x": x}, num_threads=threads, timer=timer
    )
    with CpuLoad() as load:
        m = bench.blocked_autorange(min_run_time=min_run_time)
    return Latency(
        median_s=m.median,
        iqr_s=m.iqr,
        batch=x.shape[0],
        runs=m.number_per_run * len(m.raw_times),
        warmup=warmup,
        threads=threads,
        blocks=len(m.raw_times),
        other_cores=load.cores,
    )
