"""Latency, and whether a latency can be trusted.

- latency: torch.utils.benchmark.Timer.blocked_autorange after explicit warm-up calls, at a fixed
  thread count; the median and interquartile range over blocks of calls. The benchmark timer
  synchronizes the accelerator before each timestamp, so CUDA times are complete.
- noise: a measurement is flagged when its IQR is above SPREAD_LIMIT of its median, or when other
  processes used cores the timed threads needed while it ran (Linux /proc/stat: the machine's busy
  time minus this process's CPU time). On a shared 2-core machine a busy neighbour inflated
  batch-1 latencies 30-120x with a small spread, so the spread alone does not catch it.
"""

from __future__ import annotations

import contextlib
import os
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils import benchmark

from lightnets.errors import ConfigError

MIN_BLOCKS_FOR_IQR = 4  # a spread needs a few samples; a slow call gives only one or two blocks
SPREAD_LIMIT = 0.2  # IQR / median above which a latency is reported as noisy
BUSY_SLACK_CORES = 0.5  # other processes may use this much more than the cores left idle


def default_threads() -> int:
    """The cores this process may run on (all of them, unless restricted by affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with `threads` intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------- CPU load


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot from /proc/stat; None where unreadable.

    Busy is everything but idle and iowait; guest time is already inside user time, so the
    guest columns are left out of the total.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(t) for t in fields[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(ticks)
    return total - ticks[3] - ticks[4], total


class CpuLoad:
    """Cores used by *other* processes while the `with` block runs: the machine's busy time
    (/proc/stat) minus this process's CPU time, over the wall time. `cores` stays None where
    /proc/stat cannot be read. Resolution is one clock tick (usually 10 ms) per core."""

    def __init__(self):
        self.cores: float | None = None

    def __enter__(self) -> CpuLoad:
        self._ticks = cpu_ticks()
        self._own = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        ticks, own = cpu_ticks(), time.process_time() - self._own
        wall = time.perf_counter() - self._wall
        if self._ticks is None or ticks is None or wall <= 0:
            return
        busy = (ticks[0] - self._ticks[0]) / os.sysconf("SC_CLK_TCK")
        self.cores = max(0.0, (busy - own) / wall)


def wait_for_idle_cpu(threshold: float = 0.95, window: float = 0.1, timeout: float = 30.0) -> bool:
    """Return True once the CPU was at least `threshold` idle over `window` seconds (Linux
    /proc/stat), False after `timeout` seconds without such a window. True at once where
    /proc/stat cannot be read: there is nothing to wait on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_ticks()
        time.sleep(window)
        after = cpu_ticks()
        if before is None or after is None:
            return True
        busy, total = after[0] - before[0], after[1] - before[1]
        if total - busy >= threshold * max(1, total):
            return True
    return False


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


def contention(other_cores: float | None, threads: int, cpus: int | None = None) -> str | None:
    """Why a timing on `threads` threads was contended, when other processes took cores it
    needed (more than the `cpus - threads` left over, plus BUSY_SLACK_CORES); else None."""
    cpus = cpus or os.cpu_count() or 1
    spare = max(0, cpus - threads)
    if other_cores is not None and other_cores > spare + BUSY_SLACK_CORES:
        return f"other processes used {other_cores:.1f} of {cpus} cores"
    return None


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
