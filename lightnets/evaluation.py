"""Evaluate a model, or an exported artifact, on labelled images: one path for `lightnets eval`
(checkpoints and artifacts), the accuracy rows of `lightnets deploy`, the benchmarks and, through
`evaluate`, training's per-epoch validation.

    images = eval_images("flowers/", loaded.class_names, loaded.preprocessing)
    result = evaluate_on(loaded.model, images)          # loss, top1, top5, images/s, ...
    result = evaluate_on(ArtifactModule(run), images)   # an artifact (lightnets.deploy.checks)

`eval_images` opens the labelled images (DIR/val, else DIR itself, or the val split of digits or
CIFAR) read through the preprocessing (lightnets.preprocess), `evaluate_on` runs any module or
callable (NCHW float batch in, logits out) over them, and `evaluate` is the loop under it, which
training calls with its own sharded loader. Nothing here parses arguments or prints.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from lightnets.data import folders, splits
from lightnets.data.images import ImageDataset, make_loader
from lightnets.errors import ConfigError, MissingDependencyError
from lightnets.files import atomic_write
from lightnets.plotting import pyplot
from lightnets.preprocess import Preprocessing, eval_transform, mean_std, normalize


@dataclass
class EvalImages:
    """Labelled images to evaluate on, and the preprocessing they are read with."""

    dataset: Dataset  # items (uint8 (C, H, W) image, label, None or "path: reason")
    class_names: list[str]
    pre: Preprocessing
    skipped: list[str] = field(default_factory=list)  # unreadable files found while scanning

    def __len__(self) -> int:
        return len(self.dataset)


def eval_images(
    data: str,
    class_names: list[str],
    pre: Preprocessing,
    *,
    mode: str | None = None,
    dataset: str = "auto",
    val_split: float = 0.2,
    seed: int = 0,
    strict: bool = False,
) -> EvalImages:
    """The labelled images of `data` a model with `class_names` is evaluated on: DIR/val (or DIR
    itself) of an image folder, or the val split of digits / CIFAR (`dataset`, `val_split` and
    `seed` as the run that trained on them). ConfigError when their classes are not the model's.
    """
    mode = mode or pre.mode
    transform = eval_transform(pre.img_size, pre.crop_pct)
    fmt = splits.detect_format(data, dataset)
    if fmt != "folder":
        found = splits.open_splits(data, fmt, mode=mode, train_transform=transform,
                                   eval_transform=transform, val_split=val_split, seed=seed,
                                   strict=strict)  # fmt: skip
        names, images, skipped = found.class_names, found.val, []
    else:
        root = Path(data) / "val" if (Path(data) / "val").is_dir() else Path(data)
        unknown = sorted(set(folders.class_dirs(root)) - set(class_names))
        if unknown:
            raise ConfigError(
                f"--data {root}: classes {unknown[:5]} are not among the "
                f"checkpoint's {len(class_names)} classes"
            )
        paths, labels, skipped = folders.scan_folder(root, class_names, strict)
        images = ImageDataset(labels, transform, mode, paths=paths, strict=strict)
        names = class_names
    if names != class_names:
        raise ConfigError(
            f"--data: {len(names)} classes but the checkpoint has "
            f"{len(class_names)} ({', '.join(class_names[:5])}...)"
        )
    return EvalImages(images, list(class_names), pre, skipped)


def evaluate_on(
    model: Callable[[Tensor], Tensor],
    images: EvalImages,
    *,
    batch_size: int = 128,
    workers: int = 0,
    device: str | torch.device = "cpu",
    confusion: bool = False,
) -> dict:
    """loss, top-1, top-5 (%), images, images/s and the unreadable images ("skipped", those found
    while scanning first) of `model` on `images`; with `confusion`, the (true, predicted) count
    matrix. `model` is an nn.Module or any callable from an NCHW float batch to logits (an
    artifact: lightnets.deploy.checks.ArtifactModule)."""
    loader = make_loader(images.dataset, batch_size, train=False, seed=0, workers=workers)
    mean, std = mean_std(images.pre, device)
    result = evaluate(model, loader, device=device, mean=mean, std=std,
                      num_classes=len(images.class_names), confusion=confusion)  # fmt: skip
    result["skipped"] = images.skipped + result["skipped"]
    return result


@torch.no_grad()
def evaluate(
    model: Callable[[Tensor], Tensor],
    loader,
    *,
    device,
    mean: Tensor,
    std: Tensor,
    num_classes: int,
    amp_dtype=None,
    channels_last=False,
    confusion=False,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> dict:
    """loss, top-1, top-5 (%), images/s over the (uint8 images, labels, skipped) batches of
    `loader`, normalized by `mean` / `std`; with `confusion`, the (true, predicted) counts.

    `reduce` sums the totals over processes (training's all-reduce: each rank evaluates its
    shard). The sums stay on `device`: no host sync per batch, and NCCL reduces CUDA tensors only.
    """
    if hasattr(model, "eval"):
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
            logits = torch.as_tensor(model(x)).float()
        top = logits.topk(k, dim=1).indices
        sums[0] += F.cross_entropy(logits, y, reduction="sum")
        sums[1] += (top[:, 0] == y).sum()
        sums[2] += (top == y[:, None]).any(1).sum()
        sums[3] += len(y)
        if matrix is not None:
            matrix += _confusion(y.cpu(), top[:, 0].cpu(), num_classes)
    loss, top1, top5, images = (reduce(sums) if reduce else sums).tolist()
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


def per_class_accuracy(matrix: Tensor, class_names: list[str]) -> dict[str, float | None]:
    """Top-1 (%) of each class from a confusion matrix; None for a class without images."""
    return {
        name: (100 * float(matrix[i, i]) / float(matrix[i].sum()) if matrix[i].sum() else None)
        for i, name in enumerate(class_names)
    }


def plot_confusion(matrix: torch.Tensor, class_names: list[str], path: Path) -> str | None:
    """The confusion matrix as a PNG at `path` (rows normalized); None, or why there is none."""
    try:
        plt = pyplot(Path(path).name)
    except MissingDependencyError as err:
        return str(err)
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
                    color = "white" if rows[i, j] > 0.5 else "black"
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color=color)  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return None
