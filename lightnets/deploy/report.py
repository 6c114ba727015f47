"""The deployment matrix as a person reads it: the table's columns, the lines under the table and
the latency-vs-accuracy chart of `lightnets deploy` (lightnets.deploy.matrix measures it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lightnets.errors import MissingDependencyError
from lightnets.files import atomic_write
from lightnets.plotting import pyplot
from lightnets.tables import Column

COLUMNS = (
    Column("runtime", "runtime"),
    Column("precision", "precision"),
    Column("status", "status"),
    Column("b1_min_ms", "b1 min ms", ".2f"),
    Column("b1_median_ms", "b1 median ms", ".2f"),
    Column("images_per_s", "img/s", ".0f", note="img/s: throughput at the batch of column 'batch'"),
    Column("batch", "batch", "d"),
    Column("size_mb", "MB", ".1f"),
    Column("top1", "top-1 %", ".2f"),
    Column("top1_drop", "drop", "+.2f", note="drop: top-1 points lost against PyTorch eager"),
    Column("check", "export check"),
    Column("note", "note"),
)


def notes(
    result: dict, winner: dict | None, written: Sequence[Path], chart_note: str | None = None
) -> list[str]:
    """The lines under the table: what was measured, how noisy, the winner, the files `written`
    (and why there is no chart). `result` is the matrix's JSON record (model, input, threads,
    images, data, rounds, max_drop, busy_blocks, rows: the PyTorch reference first)."""
    rows, reference, max_drop = result["rows"], result["rows"][0]["top1"], result["max_drop"]
    timed = sum(r["status"] == "ok" for r in rows)  # the reference and every verified artifact
    lines = [
        f"{result['model']}, {result['input'][1]} px, {result['threads']} threads, top-1 on "
        f"{result['images']} images of {result['data']}; drop against PyTorch eager "
        f"({reference:.2f}%)",
        "latency: batch 1, min and median over interleaved rounds; images/s at the batch shown",
    ]
    busy = result["busy_blocks"]
    if busy:
        lines.append(
            f"{busy} of {2 * result['rounds'] * timed} timed blocks started on a busy CPU (no idle "
            "0.1 s within 10 s): other work shared the cores, read the latencies as noisy"
        )
    if winner:
        how = f" ({winner['note']})" if winner["note"] else ""
        lines.append(
            f"fastest within {max_drop} points: {winner['runtime']} {winner['precision']}"
            f"{how} ({winner['b1_min_ms']:.2f} ms, top-1 {winner['top1']:.2f}%, "
            f"{winner['top1_drop']:+.2f}) -> {winner['artifact']}"
        )
    else:
        lines.append(f"no artifact is within {max_drop} points of PyTorch")
    lines.append("wrote " + ", ".join(map(str, written)))
    return lines + [chart_note] * bool(chart_note)


def plot_latency_accuracy(
    rows: list[dict],
    winner: dict | None,
    reference_top1: float,
    max_drop: float,
    path: Path,
    model_name: str,
) -> str | None:
    """Batch-1 latency against top-1, one point per artifact, the winner a star; None, or why
    there is no chart (matplotlib missing)."""
    try:
        plt = pyplot(Path(path).name)
    except MissingDependencyError as err:
        return f"no chart: {err}"
    points = [r for r in rows if r["status"] == "ok" and r["b1_min_ms"] and r["top1"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in points:
        is_winner = winner is not None and r is winner
        ax.scatter(r["b1_min_ms"], r["top1"], s=60 if is_winner else 30,
                   marker="*" if is_winner else "o", zorder=3)  # fmt: skip
        ax.annotate(f"{r['runtime']} {r['precision']}", (r["b1_min_ms"], r["top1"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)  # fmt: skip
    ax.axhline(reference_top1 - max_drop, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("batch-1 latency, min over rounds (ms)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{model_name}: latency vs accuracy (dashed: PyTorch - {max_drop} points)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return None
