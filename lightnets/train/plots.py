"""curves.png of a training run: loss and top-1 accuracy per epoch (matplotlib, optional)."""

from __future__ import annotations

import math
from pathlib import Path

from lightnets import rundir
from lightnets.errors import MissingDependencyError
from lightnets.files import atomic_write
from lightnets.plotting import pyplot


def plot_curves(run_dir: Path, history: list[dict]) -> str | None:
    """curves.png with loss and accuracy per epoch; a note instead if matplotlib is missing."""
    try:
        plt = pyplot(rundir.CURVES)
    except MissingDependencyError as err:
        return str(err)
    if not history:
        return None
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for split in ("train", "val", "ema_val"):
            values = [row.get(f"{split}_{key}") for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [math.nan if v is None else v for v in values], "o-", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if key == "loss" else "top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(run_dir / rundir.CURVES, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return None
