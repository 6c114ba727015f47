"""Pictures for `lightnets inspect`; the only inspect module that imports matplotlib.

Figures are built with `matplotlib.figure.Figure` (no pyplot), so they neither need a display nor
touch the user's pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from lightnets import plotting
from lightnets.errors import ConfigError
from lightnets.inspect.classify import CLASSES, KernelClasses
from lightnets.inspect.kernels import DepthwiseKernels
from lightnets.inspect.table import stage_label

COLORS = {"gaussian": "#4c72b0", "edge": "#dd8452", "identity": "#55a868", "other": "#c8c8c8"}
LETTERS = {"gaussian": "G", "edge": "E", "identity": "I", "other": ""}
STRIDED = "#c0392b"


def _figure(width: float, height: float):
    plotting.require_matplotlib("plotting")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path


def _kernel_strip(weight: Tensor, cell: int, count: int) -> Tensor:
    """The first `count` kernels side by side, each scaled to max |w| = 1, centred in its cell."""
    k = weight.shape[-1]
    strip = torch.full((cell, count * (cell + 1) - 1), math.nan)
    off = (cell - k) // 2
    for i, w in enumerate(weight[:count]):
        peak = w.abs().max()
        x0 = i * (cell + 1) + off
        strip[off : off + k, x0 : x0 + k] = w / peak if peak > 0 else w
    return strip


def plot_kernel_atlas(
    records: Mapping[str, DepthwiseKernels],
    path: str | Path,
    classes: Mapping[str, KernelClasses] | None = None,
    max_kernels: int = 32,
    title: str = "",
) -> Path:
    """One row of kernels per depthwise layer, grouped by stage; strided rows framed in red.

    Each kernel is divided by its largest magnitude and drawn on a diverging map (red +, blue -,
    white 0). With `classes`, a letter marks each kernel's class (G blur, E edge, I identity).
    """
    if not records:
        raise ConfigError("no depthwise layers to draw")
    cell = max(r.kernel_size for r in records.values())
    count = min(max_kernels, max(r.channels for r in records.values()))
    rows = _atlas_rows(records)
    row_h, head_h = 0.42, 0.28
    height = sum(head_h if rec is None else row_h for _, rec in rows) + 0.6
    width = 3.2 + 0.3 * count
    fig = _figure(width, height)
    if title:
        fig.suptitle(title, y=1 - 0.15 / height, fontsize=10)
    y = height - 0.5
    left, strip_w = 3.0 / width, 0.3 * count / width
    for name, rec in rows:
        if rec is None:
            y -= head_h
            fig.text(0.01, (y + 0.06) / height, name, fontsize=9, weight="bold")
            continue
        y -= row_h
        ax = fig.add_axes([left, (y + 0.04) / height, strip_w, (row_h - 0.08) / height])
        _kernel_row(ax, rec, cell, count, classes[name] if classes and name in classes else None)
        strided = rec.stride > 1
        label = f"{name}  {rec.kernel_size}x{rec.kernel_size}" + (f"  s{rec.stride}" * strided)
        label += "  fixed" * rec.fixed
        fig.text(
            left - 0.01,
            (y + row_h / 2) / height,
            label,
            fontsize=6.5,
            ha="right",
            va="center",
            color=STRIDED if strided else "black",
        )
    return _save(fig, path)


def _atlas_rows(
    records: Mapping[str, DepthwiseKernels],
) -> list[tuple[str, DepthwiseKernels | None]]:
    """The atlas's rows in order: (stage label, None) heading each stage, then (name, record)."""
    rows: list[tuple[str, DepthwiseKernels | None]] = []
    last = None
    for name, rec in records.items():
        if stage_label(rec) != last:
            last = stage_label(rec)
            rows.append((last, None))
        rows.append((name, rec))
    return rows


def _kernel_row(ax, rec: DepthwiseKernels, cell: int, count: int, classes: KernelClasses | None):
    """One layer's kernels on `ax`, framed in red when strided, each lettered by its class."""
    n = min(count, rec.channels)
    ax.imshow(
        _kernel_strip(rec.weight, cell, n).numpy(),
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        interpolation="nearest",
        aspect="auto",
        extent=(0, n * (cell + 1) - 1, cell, 0),
    )
    ax.set_xlim(0, count * (cell + 1) - 1)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(rec.stride > 1)
        spine.set_color(STRIDED)
        spine.set_linewidth(1.5)
    if classes is None:
        return
    for i, cls in enumerate(classes.classes[:n]):
        if LETTERS[cls]:
            ax.text(
                i * (cell + 1) + 0.1,
                0.1,
                LETTERS[cls],
                fontsize=4.5,
                va="top",
                ha="left",
                color="black",
                weight="bold",
            )


def _stage_marks(ax, rows: Sequence[dict]) -> None:
    last = None
    for row in rows:
        if row["stage_label"] != last:
            last = row["stage_label"]
            ax.axvline(row["depth"] - 0.5, color="0.6", lw=0.6, ls="--")
            ax.text(
                row["depth"] - 0.4,
                1.01,
                last.replace("stage ", "s"),
                fontsize=6,
                transform=ax.get_xaxis_transform(),
                va="bottom",
            )


def plot_class_shares(tables: Mapping[str, Sequence[dict]], path: str | Path) -> Path:
    """Stacked bars of class shares per depthwise layer (by depth), one panel per table.

    Strided layers are marked with a red triangle under their bar.
    """
    n = len(tables)
    longest = max(len(rows) for rows in tables.values())
    fig = _figure(min(4 + 0.16 * longest, 14) * n, 3.6)
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for ax, (label, rows) in zip(axes, tables.items()):
        depth = [r["depth"] for r in rows]
        bottom = [0.0] * len(rows)
        for cls in CLASSES:
            values = [r[cls] for r in rows]
            ax.bar(depth, values, bottom=bottom, color=COLORS[cls], width=0.85, label=cls)
            bottom = [b + v for b, v in zip(bottom, values)]
        strided = [r["depth"] for r in rows if r["stride"] > 1]
        ax.plot(
            strided,
            [-0.04] * len(strided),
            "^",
            color=STRIDED,
            ms=4,
            clip_on=False,
            label="strided",
        )
        _stage_marks(ax, rows)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xlabel("depthwise layer (depth)")
        ax.set_title(label, fontsize=9, pad=12)
    axes[0].set_ylabel("share of kernels")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def plot_frequency(tables: Mapping[str, Sequence[dict]], path: str | Path) -> Path:
    """Mean share of kernel energy below f/4 per layer; strided layers red, white noise dashed."""
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    markers = "os^Dv<>"
    for i, (label, rows) in enumerate(tables.items()):
        depth = [r["depth"] for r in rows]
        ax.plot(
            depth, [r["low_freq"] for r in rows], "-", color=f"C{i}", lw=0.8, alpha=0.6, label=label
        )
        for strided in (False, True):
            sel = [r for r in rows if (r["stride"] > 1) == strided]
            ax.plot(
                [r["depth"] for r in sel],
                [r["low_freq"] for r in sel],
                markers[i % 7],
                ls="none",
                ms=5 if strided else 3.5,
                color=STRIDED if strided else f"C{i}",
                mec=f"C{i}",
            )
    ax.axhline(0.25, color="0.4", ls="--", lw=0.8)
    ax.text(
        0.0,
        0.26,
        "white noise / random init (25%)",
        fontsize=7,
        color="0.3",
        transform=ax.get_yaxis_transform(),
    )
    ax.plot([], [], "o", color=STRIDED, label="strided layer")
    ax.set_ylim(0, 1)
    ax.set_xlabel("depthwise layer (depth)")
    ax.set_ylabel("energy below f/4")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_feature_grid(
    fmap: Tensor, path: str | Path, title: str = "", max_channels: int = 32
) -> Path:
    """The first `max_channels` channels of a (C, H, W) or (1, C, H, W) map, each min-max scaled,
    tiled 8 to a row (channel i at row i // 8, column i % 8)."""
    fmap = fmap.detach().float().cpu()
    if fmap.ndim == 4:
        fmap = fmap[0]
    n = min(max_channels, fmap.shape[0])
    cols = min(8, n)
    grid_rows = math.ceil(n / cols)
    h, w = fmap.shape[-2:]
    gap = max(1, min(h, w) // 8)
    # one mosaic and one imshow: a subplot per channel costs seconds per figure
    mosaic = torch.full((grid_rows * (h + gap) - gap, cols * (w + gap) - gap), math.nan)
    for i in range(n):
        x = fmap[i]
        span = x.max() - x.min()
        x = (x - x.min()) / span if span > 0 else torch.zeros_like(x)
        r, c = divmod(i, cols)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = x
    fig = _figure(1.2 * cols, 1.2 * grid_rows * h / w + 0.5)
    ax = fig.add_axes([0.02, 0.02, 0.96, 0.96 - 0.4 / (1.2 * grid_rows * h / w + 0.5)])
    ax.imshow(mosaic.numpy(), cmap=_with_bad("viridis", "white"), interpolation="nearest")
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _with_bad(name: str, color: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=color)


def plot_similarity(
    names: Sequence[str], matrices: Mapping[str, Tensor], path: str | Path, title: str = ""
) -> Path:
    """Heat-maps of layer-to-layer similarity (linear CKA; matched-channel cosine, grey = n/a)."""
    n = len(names)
    side = max(3.5, 0.22 * n + 1.5)
    fig = _figure(side * len(matrices) + 0.8, side)
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    fig.subplots_adjust(wspace=0.5)  # room for the colour bar between the panels
    for ax, (key, mat) in zip(axes, matrices.items()):
        im = ax.imshow(
            mat.numpy(), cmap=_with_bad("magma", "0.85"), vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(names, rotation=90, fontsize=6)
        ax.set_yticklabels(names, fontsize=6)
        ax.set_title(
            {"cka": "linear CKA", "cosine": "cosine, matched channels"}.get(key, key), fontsize=9
        )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
