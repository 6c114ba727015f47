"""The train and val splits of the data `lightnets train` and `lightnets eval` take: an image
folder (DATA/train/<class>/, optionally DATA/val/<class>/), CIFAR-10/100 (python pickles) or the
built-in `digits`. The array datasets live in arrays.py, folders in folders.py; nothing is
downloaded.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from lightnets.data.arrays import cifar_root, load_cifar, load_digits, read_cifar_names
from lightnets.data.folders import class_dirs, scan_folder, stratified_split
from lightnets.data.images import ImageDataset


@dataclass
class ImageStats:
    """Sizes and colour modes of a set of images (from their headers)."""

    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height)
    modes: Counter = field(default_factory=Counter)

    def add(self, size: tuple[int, int], mode: str) -> None:
        self.sizes.append(size)
        self.modes[mode] += 1

    @property
    def median_side(self) -> int | None:
        return round(statistics.median(min(s) for s in self.sizes)) if self.sizes else None

    def smaller_than(self, side: int) -> int:
        return sum(min(s) < side for s in self.sizes)

    def decoded_bytes(self, channels: int) -> int:
        return sum(w * h * channels for w, h in self.sizes)

    def __add__(self, other: ImageStats) -> ImageStats:
        return ImageStats(self.sizes + other.sizes, self.modes + other.modes)


def detect_format(data: str, dataset: str = "auto") -> str:
    """'digits', 'cifar10', 'cifar100' or 'folder' for --data (FileNotFoundError if absent)."""
    if dataset != "auto":
        return dataset
    if data == "digits":
        return "digits"
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {data!r}: no such directory (or use --data digits)")
    if cifar_root(root, "cifar10"):
        return "cifar10"
    if cifar_root(root, "cifar100"):
        return "cifar100"
    return "folder"


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason" found while scanning
    train_stats: object = None  # ImageStats of the readable training images
    val_stats: object = None


def class_names(data: str, fmt: str) -> list[str]:
    """The class names of the data at `data`, from its layout only (no image is read).

    Fails like `open_splits` would (missing train/, no class folders, no CIFAR files), so that a
    wrong --data is reported before any slow work.
    """
    if fmt == "digits":
        return [str(i) for i in range(10)]
    if fmt in ("cifar10", "cifar100"):
        root = cifar_root(Path(data), fmt)
        if root is None:
            raise FileNotFoundError(f"--data {data}: no {fmt} python-pickle files found")
        return read_cifar_names(root, fmt)
    train_dir = Path(data) / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"--data {data}: expected {train_dir}/<class>/<images>")
    return class_dirs(train_dir)


def open_splits(
    data: str,
    fmt: str,
    *,
    mode: str,
    train_transform,
    eval_transform,
    val_split: float = 0.2,
    seed: int = 0,
    strict: bool = False,
) -> Splits:
    """Train and val datasets of the data at `data` (format from `detect_format`)."""
    kw = {"mode": mode, "seed": seed, "strict": strict}
    if fmt == "digits":
        images, labels = load_digits()
        train_idx, val_idx = stratified_split(labels, val_split, seed=0)
        names = [str(i) for i in range(10)]
        return Splits(
            ImageDataset(labels[train_idx], train_transform, arrays=images[train_idx], **kw),
            ImageDataset(labels[val_idx], eval_transform, arrays=images[val_idx], **kw),
            names,
            train_stats=_array_stats(images[train_idx]),
            val_stats=_array_stats(images[val_idx]),
        )
    if fmt in ("cifar10", "cifar100"):
        root = cifar_root(Path(data), fmt)
        if root is None:
            raise FileNotFoundError(f"--data {data}: no {fmt} python-pickle files found")
        (xtr, ytr), (xva, yva), names = load_cifar(root, fmt)
        return Splits(
            ImageDataset(ytr, train_transform, arrays=xtr, **kw),
            ImageDataset(yva, eval_transform, arrays=xva, **kw),
            names,
            train_stats=_array_stats(xtr),
            val_stats=_array_stats(xva),
        )
    return _folder_splits(data, train_transform, eval_transform, val_split, strict, kw)


def _folder_splits(data: str, train_transform, eval_transform, val_split: float, strict: bool,
                   kw: dict) -> Splits:  # fmt: skip
    """An image folder's splits: DIR/train/<class>/ and DIR/val/<class>/, or a stratified
    `val_split` of DIR/train/ when there is no val/."""
    root = Path(data)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"--data {data}: expected {train_dir}/<class>/<images>")
    names = class_dirs(train_dir)
    train_stats, val_stats = ImageStats(), ImageStats()
    paths, labels, skipped = scan_folder(train_dir, names, strict, train_stats)
    if (root / "val").is_dir():
        vpaths, vlabels, vskipped = scan_folder(root / "val", names, strict, val_stats)
        skipped += vskipped
    else:
        tr, va = stratified_split(np.array(labels), val_split, seed=0)
        vpaths, vlabels = [paths[i] for i in va], [labels[i] for i in va]
        paths, labels = [paths[i] for i in tr], [labels[i] for i in tr]
        sizes, val_stats = train_stats.sizes, ImageStats(modes=train_stats.modes)
        train_stats = ImageStats([sizes[i] for i in tr], train_stats.modes)
        val_stats.sizes = [sizes[i] for i in va]
    return Splits(
        ImageDataset(labels, train_transform, paths=paths, **kw),
        ImageDataset(vlabels, eval_transform, paths=vpaths, **kw),
        names,
        skipped,
        train_stats,
        val_stats,
    )


def _array_stats(images: np.ndarray):
    n, h, w = images.shape[:3]
    mode = "L" if images.ndim == 3 or images.shape[-1] == 1 else "RGB"
    return ImageStats([(w, h)] * n, Counter({mode: n}))
