"""This machine's CPU as the tools share it: how many threads to run, how loaded it is, and
waiting until it is idle.

- threads: `default_threads` (the cores this process may run on), `cpu_threads` (training's
  intra-op threads beside DataLoader workers and other ranks), `torch_threads` (a fixed thread
  count for a block, then the previous one back).
- load: `cpu_ticks` (Linux /proc/stat), `CpuLoad` (cores other processes used during a block),
  `contention` (whether that took cores a timing needed), `wait_for_idle_cpu`.

Only the standard library at import (torch inside `torch_threads`), so that the torch-free tools
can use it; lightnets.cpu_class names the CPU's instruction-set class.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

BUSY_SLACK_CORES = 0.5  # other processes may use this much more than the cores left idle


# ---------------------------------------------------------------------------- threads


def default_threads() -> int:
    """The cores this process may run on (all of them, unless restricted by affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_threads(requested: int, workers: int) -> int:
    """Intra-op threads: `requested`, else this rank's share of the cores minus its workers.

    torch defaults to every core, ignoring DataLoader workers and other ranks on the machine;
    oversubscribed OpenMP threads spin against each other (a 2-core training step was ~40x slower
    with 2 threads plus workers than with 1).
    """
    if requested:
        return requested
    per_rank = default_threads() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, per_rank - workers)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with `threads` intra-op threads, then restore the previous setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------------------- load


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


def contention(other_cores: float | None, threads: int, cpus: int | None = None) -> str | None:
    """Why a timing on `threads` threads was contended, when other processes took cores it
    needed (more than the `cpus - threads` left over, plus BUSY_SLACK_CORES); else None."""
    cpus = cpus or os.cpu_count() or 1
    spare = max(0, cpus - threads)
    if other_cores is not None and other_cores > spare + BUSY_SLACK_CORES:
        return f"other processes used {other_cores:.1f} of {cpus} cores"
    return None


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
