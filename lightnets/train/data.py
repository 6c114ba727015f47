"""Datasets for `lightnets train`: image folders, CIFAR-10/100 (python pickles) and `digits`.

The array datasets (digits, CIFAR) live in datasets.py; nothing is downloaded.

Samples are addressed by (epoch, index) keys from `EpochBatchSampler`, so each sample's
augmentation is seeded by (seed, epoch, index) and a run resumed mid-epoch sees exactly the
batches it would have seen. Unreadable images are skipped and reported, or with `strict` raise.
"""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from lightnets.errors import ConfigError, unreadable_image_errors
from lightnets.train.datasets import cifar_root, load_cifar, load_digits, read_cifar_names
from lightnets.train.folders import (
    class_dirs,
    scan_folder,
    stratified_split,
)
from lightnets.train.transforms import to_uint8_tensor

# per-format defaults, layered under recipes and flags (config.resolve_config)
PRESETS = {
    "digits": {  # the no-argument demo: about a minute on 2 CPU cores
        "img_size": 32,
        "scale": (0.7, 1.0),  # measured on digits, 8 epochs: 87.5% with pad-and-crop, 90.5% this
        "hflip": 0.0,  # digits are not mirror-symmetric
        "batch_size": 64,
        "epochs": 8,
        "lr_base": 0.1,
        "warmup_epochs": 1.0,
        "label_smoothing": 0.1,
    },
    "cifar10": {"img_size": 32},  # 32-px images: the small-image defaults (policy.py)
    "cifar100": {"img_size": 32},
    "folder": {},
}


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
    train_stats: object = None  # policy.ImageStats of the readable training images
    val_stats: object = None


class ImageDataset(Dataset):
    """Samples from a list of image files or an in-memory uint8 array, by (epoch, index) key.

    Items are (uint8 (C, H, W) tensor, label, None), or (None, label, "path: reason") for an
    image file that cannot be read; `collate` drops those and passes their paths on for
    reporting. An in-memory array that fails raises: there is no file to blame, it is a bug.
    """

    def __init__(
        self,
        labels,
        transform,
        mode: str,
        *,
        paths=None,
        arrays=None,
        seed: int = 0,
        strict: bool = False,
    ):
        self.labels, self.paths, self.arrays = list(labels), paths, arrays
        self.transform, self.mode, self.seed, self.strict = transform, mode, seed, strict

    def __len__(self) -> int:
        return len(self.labels)

    def preload(self, threads: int = 4) -> None:
        """Decode every image file once into memory (uint8 arrays in `mode`), so that epochs
        re-read no file. A file that fails to decode stays None here and is reported when read."""
        if self.arrays is not None or self.paths is None:
            return

        def decode(path):
            try:
                return np.asarray(self._open(path))
            except unreadable_image_errors():  # reported (or raised with --strict) by __getitem__
                return None

        with ThreadPoolExecutor(threads) as pool:  # PIL decodes without holding the GIL
            self.arrays = list(pool.map(decode, self.paths))

    def load(self, index: int):
        from PIL import Image

        if self.arrays is not None and self.arrays[index] is not None:
            return Image.fromarray(self.arrays[index]).convert(self.mode)
        return self._open(self.paths[index])

    def _open(self, path: str):
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            # palette images with transparency go through RGBA so the alpha is dropped cleanly
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            return img.convert(self.mode)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if self.arrays is not None and self.arrays[index] is not None:
            img = self.load(index)  # decoded already (digits, CIFAR, preloaded): no file to blame
        else:
            path = self.paths[index]
            try:
                img = self._open(path)
            except unreadable_image_errors() as err:
                reason = f"{path}: {type(err).__name__}: {err}"
                if self.strict:
                    msg = f"unreadable image {reason} (drop --strict to skip it)"
                    raise ConfigError(msg) from None
                return None, self.labels[index], reason
        rng = random.Random(hash((self.seed, epoch, index)))
        return to_uint8_tensor(self.transform(img, rng)), self.labels[index], None


def collate(items):
    """Stack readable samples: (uint8 images, int64 labels, list of 'path: reason' skipped)."""
    good = [(x, y) for x, y, bad in items if bad is None]
    skipped = [bad for _, _, bad in items if bad is not None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), skipped
    images = torch.stack([x for x, _ in good])
    return images, torch.tensor([y for _, y in good], dtype=torch.long), skipped


class EpochBatchSampler:
    """Batches of (epoch, index) keys in DistributedSampler order for one rank.

    `set_epoch(epoch, skip)` re-seeds the order (seed + epoch) and leaves out the first `skip`
    batches, which a run resumed mid-epoch has already trained on.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.batch_size, self.drop_last, self.shuffle = batch_size, drop_last, shuffle
        self.size, self.rank, self.world_size = size, rank, world_size
        self.sampler = DistributedSampler(
            range(size), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
        )
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.sampler.set_epoch(epoch)

    def batches_per_epoch(self) -> int:
        n = len(self.sampler) if self.shuffle else len(range(self.rank, self.size, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        # eval shards without padding (no sample counted twice); training pads like DDP expects
        order = (
            list(self.sampler)
            if self.shuffle
            else list(range(self.rank, self.size, self.world_size))
        )
        for b in range(self.skip, self.batches_per_epoch()):
            yield [(self.epoch, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.skip


def make_loader(
    dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
):
    from torch.utils.data import DataLoader

    sampler = EpochBatchSampler(
        len(dataset),
        batch_size,
        shuffle=train,
        drop_last=train,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    # our own generator: creating an iterator must not draw from the global RNG (exact resume)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_ignore_stop_signals,
    )


def _ignore_stop_signals(worker_id: int) -> None:
    # Ctrl-C, and the SIGTERM of SLURM / systemd / `kill -- -PGID`, reach the whole process group;
    # only the main process reacts (finishes the step, checkpoints, then shuts the workers down).
    # A worker killed by them would make the DataLoader raise before anything is saved.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# --- formats


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
    root = Path(data)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"--data {data}: expected {train_dir}/<class>/<images>")
    from lightnets.train.policy import ImageStats

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
    from lightnets.train.policy import ImageStats

    n, h, w = images.shape[:3]
    mode = "L" if images.ndim == 3 or images.shape[-1] == 1 else "RGB"
    return ImageStats([(w, h)] * n, Counter({mode: n}))
