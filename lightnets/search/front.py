"""What a search hands back: the Pareto front of validation accuracy against measured latency,
the chosen network, the table in every format and the chart (matplotlib, through
lightnets.plotting, inside the function that draws)."""

from __future__ import annotations

from collections.abc import Sequence

from lightnets.errors import MissingDependencyError
from lightnets.plotting import require_matplotlib
from lightnets.tables import Column, render

# fmt: off
COLUMNS = (
    Column("id",           "candidate"),
    Column("acc",          "acc %",      ".2f",
           "acc %: validation top-1 after the last epoch (the EMA's when kept), one seed."),
    Column("latency_ms",   "ms",         ".3f",
           "ms: latency of one image (batch 1) on the target, measured end to end (the fastest "
           "of interleaved rounds)."),
    Column("predicted_ms", "predicted",  ".3f",
           "predicted: the latency predictor's figure the search went by."),
    Column("objective",    "objective",  ".2f"),
    Column("params_m",     "params M",   ".3f"),
    Column("macs_m",       "MACs M",     ".1f"),
    Column("parent",       "parent"),
    Column("mark",         ""),
)
# fmt: on


def dominates(a: dict, b: dict, x: str = "latency_ms", y: str = "acc") -> bool:
    """`a` is no slower and no less accurate than `b`, and better in one of the two."""
    return a[x] <= b[x] and a[y] >= b[y] and (a[x] < b[x] or a[y] > b[y])


def pareto_front(points: Sequence[dict], x: str = "latency_ms", y: str = "acc") -> list[dict]:
    """The points no other point dominates, by `x` (lower is better) then `y`; equal points
    are all kept. Points without both values are left out."""
    points = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    front: list[dict] = []
    best_y = best_x = None
    for p in sorted(points, key=lambda p: (p[x], -p[y])):
        if best_y is None or p[y] > best_y or (p[y] == best_y and p[x] == best_x):
            front.append(p)
            best_y, best_x = p[y], p[x]
    return front


def choose_best(points: Sequence[dict], budget_ms: float) -> dict | None:
    """The highest objective among the points measured within the budget (ties: the faster)."""
    inside = [
        p
        for p in points
        if p.get("latency_ms") is not None
        and p["latency_ms"] <= budget_ms
        and p.get("objective") is not None
    ]
    return max(inside, key=lambda p: (p["objective"], -p["latency_ms"]), default=None)


def render_front(rows: Sequence[dict], fmt: str, *, notes: Sequence[str] = (), extra=None) -> str:
    return render(rows, COLUMNS, fmt, notes=notes, json_key="front", json_extra=extra)


def front_chart(
    points: Sequence[dict],
    front: Sequence[dict],
    best: dict | None,
    budget_ms: float,
    title: str = "",
):
    """(matplotlib Figure, note) of the measured candidates (accuracy vs latency), the front, the
    budget and the chosen one: no figure when nothing was measured, and a note instead when
    matplotlib is missing (the table and files are written anyway)."""
    points = [p for p in points if p.get("latency_ms") is not None and p.get("acc") is not None]
    if not points:
        return None, None
    try:
        require_matplotlib("drawing front.png")
    except MissingDependencyError as err:
        return None, f"No chart: {err}."
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    ax.scatter([p["latency_ms"] for p in points], [p["acc"] for p in points], s=18,
               color="tab:blue", alpha=0.6, label="candidates (measured)")  # fmt: skip
    ax.plot([p["latency_ms"] for p in front], [p["acc"] for p in front], "--o", color="tab:orange",
            markersize=5, linewidth=1, label="Pareto front")  # fmt: skip
    for p in front:
        ax.annotate(p["id"], (p["latency_ms"], p["acc"]), xytext=(4, 4),
                    textcoords="offset points", fontsize=7)  # fmt: skip
    if best is not None:
        ax.scatter([best["latency_ms"]], [best["acc"]], marker="*", s=160, color="tab:red",
                   zorder=3, label=f"best ({best['id']})")  # fmt: skip
    ax.axvline(budget_ms, color="grey", linewidth=1, linestyle=":", label="budget")
    ax.set_xlabel(f"latency, ms per image (batch 1, {points[0].get('target', 'target')})")
    ax.set_ylabel("val top-1 %")
    ax.set_title(title or "searched networks: accuracy vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, None
