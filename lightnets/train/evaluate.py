"""Evaluation of a classifier on labelled images: the library behind `lightnets eval` and the
per-epoch validation of `lightnets train`.

`evaluate` runs a model over a loader (loss, top-1, top-5, images/s, optional confusion matrix,
summed over ranks); `eval_dataset` opens the labelled images of a run's data or of a folder;
`plot_confusion` draws the matrix. Nothing here parses arguments or prints.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lightnets.checkpoints import Preprocessing
from lightnets.errors import ConfigError
from lightnets.files import atomic_write
from lightnets.train import data as data_mod
from lightnets.train.config import TrainConfig
from lightnets.train.distributed import all_reduce
from lightnets.train.transforms import eval_transform, normalize


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    *,
    device,
    mean,
    std,
    num_classes: int,
    amp_dtype=None,
    channels_last=False,
    confusion=False,
) -> dict:
    """loss, top-1, top-5 (%), images/s over this rank's shard, summed over ranks.

    The sums stay on `device` (no host sync per batch; NCCL reduces CUDA tensors only). With
    `confusion`, also the (true, predicted) count matrix (single process).
    """
    model.eval()
    device = torch.device(device)
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    sums = torch.zeros(4, dtype=dtype, device=device)  # loss, top1, top5, n
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64) if confusion else None
    skipped: list[str] = []
    k = min(5, num_classes)
    autocast = _autocast(device, amp_dtype)
    start = time.perf_counter()
    for x, y, bad in loader:
        skipped += bad
        if not len(y):
            continue
        x = normalize(x.to(device), mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device)
        with autocast:
            logits = model(x).float()
        top = logits.topk(k, dim=1).indices
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        sums[1] += (top[:, 0] == y).sum()
        sums[2] += (top == y[:, None]).any(1).sum()
        sums[3] += len(y)
        if matrix is not None:
            matrix += _confusion(y.cpu(), top[:, 0].cpu(), num_classes)
    loss, top1, top5, images = all_reduce(sums).tolist()
    elapsed = time.perf_counter() - start  # after .tolist(): the device has finished
    n = max(images, 1.0)
    out = {
        "loss": loss / n,
        "top1": 100 * top1 / n,
        "top5": 100 * top5 / n,
        "images": int(images),
        "images_per_s": images / max(elapsed, 1e-9),
        "skipped": skipped,
    }
    if matrix is not None:
        out["confusion"] = matrix
    return out


def _autocast(device: torch.device, amp_dtype):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


def _confusion(true, predicted, num_classes: int):
    """(true, predicted) count matrix of one batch."""
    counts = torch.bincount(true * num_classes + predicted, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def eval_dataset(
    cfg: TrainConfig, data: str, class_names: list[str], pre: Preprocessing, strict: bool
):
    """Labelled images to evaluate: DIR/val (or DIR itself), or the val split of digits/CIFAR."""
    mode = "L" if cfg.in_chans == 1 else "RGB"
    transform = eval_transform(pre.img_size, pre.crop_pct)
    fmt = data_mod.detect_format(data, cfg.dataset if data == cfg.data else "auto")
    if fmt != "folder":
        splits = data_mod.open_splits(
            data,
            fmt,
            mode=mode,
            train_transform=transform,
            eval_transform=transform,
            val_split=cfg.val_split,
            seed=cfg.seed,
            strict=strict,
        )
        names, dataset, skipped = splits.class_names, splits.val, []
    else:
        root = Path(data) / "val" if (Path(data) / "val").is_dir() else Path(data)
        names = data_mod.class_dirs(root)
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise ConfigError(
                f"--data {root}: classes {unknown[:5]} are not among the "
                f"checkpoint's {len(class_names)} classes"
            )
        paths, labels, skipped = data_mod.scan_folder(root, class_names, strict)
        dataset = data_mod.ImageDataset(labels, transform, mode, paths=paths, strict=strict)
        names = class_names
    if names != class_names:
        raise ConfigError(
            f"--data: {len(names)} classes but the checkpoint has "
            f"{len(class_names)} ({', '.join(class_names[:5])}...)"
        )
    return dataset, skipped


def plot_confusion(matrix: torch.Tensor, class_names: list[str], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "confusion matrix PNG skipped: matplotlib missing (pip install lightnets[plot])"
    n = len(class_names)
    rows = matrix.double() / matrix.sum(1, keepdim=True).clamp(min=1)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 40:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        int(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return None
