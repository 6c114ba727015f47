"""What a training run tells the person watching it and the files it leaves for later.

Console: the progress bar, one line per epoch, notes on stderr (skipped images, interruptions).
Run dir: metrics.json / metrics.csv (one row per epoch), optional TensorBoard logs; curves.png
is drawn by plots.py.
Only rank 0 calls these (the loop checks `run.dist.is_main`).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from lightnets import rundir
from lightnets.files import write_text

# top-5 of 5 classes or fewer is always 100%: not shown
TOP5_MIN_CLASSES = 6


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def skipped_images(skipped: list[str]) -> None:
    if skipped:
        note(
            f"skipped {len(skipped)} unreadable image(s): "
            + "; ".join(skipped[:5])
            + (" ..." if len(skipped) > 5 else "")
        )


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        leave=False,
        desc=desc,
        dynamic_ncols=True,
        disable=not enabled,
    )


def update_bar(bar, running: dict, lr: float, world_size: int) -> None:
    """Advance the bar one step; refresh its numbers every 5 steps (formatting costs time)."""
    bar.update()
    if bar.n % 5 == 0 or bar.n == bar.total:
        seen, total_s = max(running["seen"], 1), max(running["total_s"], 1e-9)
        bar.set_postfix(
            loss=f"{running['loss'] / seen:.3f}",
            acc=f"{100 * running['correct'] / seen:.1f}",
            lr=f"{lr:.2e}",
            ips=f"{running['seen'] * world_size / total_s:.0f}",
            wait=f"{running['data_s'] / total_s:.0%}",
            refresh=False,
        )


def epoch_line(row: dict, epochs: int) -> str:
    """`epoch 3/10  train loss .. acc ..%  val loss .. acc ..% [top5 ..%]  lr ..  img/s ..`"""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"train loss {row['train_loss']:.3f} acc {row['train_acc']:.1f}%",
    ]
    if "val_acc" in row:
        top5 = f" top5 {row['val_top5']:.1f}%" if "val_top5" in row else ""
        parts.append(f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.2f}%{top5}")
    if "ema_val_acc" in row:
        parts.append(f"ema acc {row['ema_val_acc']:.2f}%")
    parts.append(
        f"lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  "
        f"data wait {row['data_wait']:.0%}  {row['epoch_s']:.1f} s"
    )
    return "  ".join(parts)


def epoch_done(row: dict, epochs: int, skipped: list[str]) -> None:
    print(epoch_line(row, epochs), flush=True)
    skipped_images(skipped)


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    write_text(run_dir / rundir.METRICS, json.dumps(history, indent=1))
    columns = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns)
    writer.writeheader()
    writer.writerows(history)
    write_text(run_dir / rundir.METRICS_CSV, buf.getvalue())


def tensorboard(run_dir: Path, row: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir / rundir.TENSORBOARD)) as writer:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, row["epoch"])
