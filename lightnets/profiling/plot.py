"""The Pareto chart of a profile: paper top-1 against measured latency and against MACs.

matplotlib is imported inside the functions that draw, through lightnets.plotting;
`require_matplotlib` lets a caller check for it before any slow measurement.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from lightnets import plotting
from lightnets.errors import ConfigError
from lightnets.files import atomic_write
from lightnets.profiling.machine import machine_info
from lightnets.profiling.table import ModelProfile

PARETO = "the Pareto plot"  # what needs matplotlib, in the message when it is missing


def require_matplotlib():
    """matplotlib with the Agg backend (files only, no display), or MissingDependencyError."""
    matplotlib = plotting.require_matplotlib(PARETO)
    matplotlib.use("Agg")
    return matplotlib


def _log_tick(value: float, _pos=None) -> str:
    """Plain numbers at 1, 2 and 5 times a power of ten; other log ticks stay unlabelled."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (1, 2, 5)) else ""


def _label_offsets(xs: list[float], ys: list[float]) -> list[int]:
    """Vertical label offsets (points) that step labels down when points crowd each other: a
    label moves 9 pt lower for each earlier label it would overlap (log x, linear y)."""
    lx = [math.log10(x) for x in xs]
    span_x = (max(lx) - min(lx)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float, int]] = []
    offsets = []
    for fx, fy in zip(((v - min(lx)) / span_x for v in lx), ((v - min(ys)) / span_y for v in ys)):
        dy = 3
        while any(
            abs(fx - px) < 0.2 and abs(fy - py) < 0.05 and dy == pdy for px, py, pdy in placed
        ):
            dy -= 9
        placed.append((fx, fy, dy))
        offsets.append(dy)
    return offsets


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[float, float]]:
    """The points that nothing beats on both cost (x, lower is better) and accuracy (y)."""
    front, best = [], float("-inf")
    for x, y in sorted(zip(xs, ys), key=lambda t: (t[0], -t[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _panel(ax, points: list[ModelProfile], key: str, label: str) -> None:
    from matplotlib.ticker import FuncFormatter

    xs = [getattr(p, key) for p in points]
    ys = [p.paper_top1 for p in points]
    ax.scatter(xs, ys, s=22, zorder=3)
    for p, x, y, dy in zip(points, xs, ys, _label_offsets(xs, ys)):
        ax.annotate(p.model, (x, y), textcoords="offset points", xytext=(4, dy), fontsize=7)
    front = pareto_front(xs, ys)
    ax.step(*zip(*front), where="post", color="tab:orange", lw=1, zorder=2, label="Pareto front")
    ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
    plain = FuncFormatter(_log_tick)
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="both", labelsize=8)
    ax.set_xlabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def plot_pareto(profiles: Sequence[ModelProfile], path: str | os.PathLike) -> list[str]:
    """Write a PNG with two panels, paper top-1 against measured latency and against MACs, one
    labelled point per model and the Pareto front as a step line. Returns the models left out
    for having no paper top-1 on their card (ConfigError if that is all of them)."""
    plt = plotting.pyplot(PARETO)

    points = [p for p in profiles if p.paper_top1 is not None]
    if not points:
        raise ConfigError("none of the profiled models has a paper top-1 on its card to plot")
    panels = (
        ("latency_ms", f"measured latency, batch {points[0].latency_batch} (ms)"),
        ("macs_m", "MACs per image (M)"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    for ax, (key, label) in zip(axes, panels):
        _panel(ax, points, key, label)
    axes[0].set_ylabel("paper ImageNet top-1 (%)")
    machine = machine_info(points[0].device, points[0].threads, points[0].runtime)
    fig.suptitle(
        f"lightnets profile: {machine['cpu']}, {points[0].threads} threads, {points[0].runtime}",
        fontsize=10,
    )
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    finally:
        plt.close(fig)
    return [p.model for p in profiles if p.paper_top1 is None]
