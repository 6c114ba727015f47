"""Datasets for `lightnets train`: image folders, CIFAR-10/100 (python pickles) and `digits`.

Nothing is downloaded. `digits` is scikit-learn's 8x8 handwritten digits (1,797 images, shipped
with the package), upsampled to 32x32 so that `lightnets train` runs with no data at all.

Samples are addressed by (epoch, index) keys from `EpochBatchSampler`, so each sample's
augmentation is seeded by (seed, epoch, index) and a run resumed mid-epoch sees exactly the
batches it would have seen. Unreadable images are skipped and reported, or with `strict` raise.
"""

from __future__ import annotations

import functools
import os
import pickle
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from lightnets.errors import ConfigError, MissingDependencyError
from lightnets.train.transforms import to_uint8_tensor

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
)

# per-format defaults, layered under recipes and flags (config.resolve_config)
PRESETS = {
    "digits": {  # the no-argument demo: about a minute on 2 CPU cores
        "img_size": 32,
        "crop_pct": 1.0,
        "scale": (0.7, 1.0),
        "hflip": 0.0,
        "batch_size": 64,
        "epochs": 8,
        "lr_base": 0.1,
        "warmup_epochs": 1.0,
        "label_smoothing": 0.1,
    },
    "cifar10": {"img_size": 32, "crop_pct": 1.0, "scale": (0.35, 1.0)},
    "cifar100": {"img_size": 32, "crop_pct": 1.0, "scale": (0.35, 1.0)},
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
    if _cifar_root(root, "cifar10"):
        return "cifar10"
    if _cifar_root(root, "cifar100"):
        return "cifar100"
    return "folder"


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)  # "path: reason" found while scanning


class ImageDataset(Dataset):
    """Samples from a list of image files or an in-memory uint8 array, by (epoch, index) key.

    Items are (uint8 (C, H, W) tensor, label, None), or (None, label, "path: reason") for an
    image that cannot be read; `collate` drops those and passes their paths on for reporting.
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

    def load(self, index: int):
        from PIL import Image

        if self.arrays is not None:
            return Image.fromarray(self.arrays[index]).convert(self.mode)
        with Image.open(self.paths[index]) as img:
            img.load()
            # palette images with transparency go through RGBA so the alpha is dropped cleanly
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            return img.convert(self.mode)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        try:
            img = self.load(index)
        except Exception as err:  # PIL raises many types for truncated or foreign files
            reason = f"{self.paths[index]}: {type(err).__name__}: {err}"
            if self.strict:
                raise ConfigError(f"unreadable image {reason} (drop --strict to skip it)") from None
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
        worker_init_fn=_ignore_sigint,
    )


def _ignore_sigint(worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; only the main process should react (checkpoint)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --- formats


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
        )
    if fmt in ("cifar10", "cifar100"):
        root = _cifar_root(Path(data), fmt)
        if root is None:
            raise FileNotFoundError(f"--data {data}: no {fmt} python-pickle files found")
        (xtr, ytr), (xva, yva), names = load_cifar(root, fmt)
        return Splits(
            ImageDataset(ytr, train_transform, arrays=xtr, **kw),
            ImageDataset(yva, eval_transform, arrays=xva, **kw),
            names,
        )
    root = Path(data)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"--data {data}: expected {train_dir}/<class>/<images>")
    names = class_dirs(train_dir)
    paths, labels, skipped = scan_folder(train_dir, names, strict)
    if (root / "val").is_dir():
        vpaths, vlabels, vskipped = scan_folder(root / "val", names, strict)
        skipped += vskipped
    else:
        tr, va = stratified_split(np.array(labels), val_split, seed=0)
        vpaths, vlabels = [paths[i] for i in va], [labels[i] for i in va]
        paths, labels = [paths[i] for i in tr], [labels[i] for i in tr]
    return Splits(
        ImageDataset(labels, train_transform, paths=paths, **kw),
        ImageDataset(vlabels, eval_transform, paths=vpaths, **kw),
        names,
        skipped,
    )


def class_dirs(root: Path) -> list[str]:
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise FileNotFoundError(f"{root}: no class sub-directories")
    return names


def _check_image(path: str) -> str | None:
    """Why `path` is not an image PIL can open (header only), or None."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as err:
        return f"{path}: {type(err).__name__}: {err}"
    return None


def scan_folder(root: Path, class_names: list[str], strict: bool = False):
    """(paths, labels, skipped) of root/<class>/** images; classes outside `class_names` fail."""
    extra = sorted(set(class_dirs(root)) - set(class_names))
    if extra:
        raise ConfigError(f"{root}: classes {extra} are not in the training classes")
    paths, labels = [], []
    for label, name in enumerate(class_names):
        folder = root / name
        if not folder.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames.sort()
            for f in sorted(filenames):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(dirpath, f))
                    labels.append(label)
    if not paths:
        raise FileNotFoundError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    with ThreadPoolExecutor(8) as pool:  # file headers: I/O bound
        problems = list(pool.map(_check_image, paths))
    bad = [p for p in problems if p]
    if bad and strict:
        raise ConfigError(f"unreadable image {bad[0]} (drop --strict to skip it)")
    keep = [i for i, p in enumerate(problems) if p is None]
    return [paths[i] for i in keep], [labels[i] for i in keep], bad


def stratified_split(labels: np.ndarray, val_share: float, seed: int = 0):
    """Deterministic (train_idx, val_idx): `val_share` of every class, at least one, to val."""
    labels = np.asarray(labels)
    gen = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = gen.permutation(np.flatnonzero(labels == c))
        k = max(1, round(len(idx) * val_share)) if len(idx) > 1 else 0
        val.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


@functools.lru_cache(maxsize=2)
def load_digits(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (1797, size, size) uint8 images (bilinear upsampling) and labels."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise MissingDependencyError(
            "the digits dataset needs scikit-learn: pip install lightnets[train]"
        ) from None
    from PIL import Image

    bunch = sk_digits()
    small = (bunch.images * (255 / 16)).round().astype(np.uint8)
    big = np.stack(
        [
            np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
            for im in small
        ]
    )
    big.flags.writeable = False  # cached: shared by every caller
    return big, bunch.target.astype(np.int64)


# --- CIFAR: python pickles, read with an unpickler that only rebuilds numpy arrays

_CIFAR_FILES = {
    "cifar10": (
        ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"],
        ["test_batch"],
        "batches.meta",
        b"labels",
        b"label_names",
        "cifar-10-batches-py",
    ),
    "cifar100": (
        ["train"],
        ["test"],
        "meta",
        b"fine_labels",
        b"fine_label_names",
        "cifar-100-python",
    ),
}


def _cifar_root(root: Path, fmt: str) -> Path | None:
    train, _, meta, _, _, sub = _CIFAR_FILES[fmt]
    for candidate in (root, root / sub):
        if (candidate / meta).is_file() and (candidate / train[0]).is_file():
            return candidate
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain containers only: a pickle cannot run other code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise ConfigError(f"refusing to unpickle {module}.{name} (only numpy arrays are allowed)")


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _ArrayUnpickler(f, encoding="bytes").load()


def load_cifar(root: Path, fmt: str):
    train_files, test_files, meta, label_key, names_key, _ = _CIFAR_FILES[fmt]

    def read(files):
        parts = [_unpickle(root / f) for f in files]
        x = np.concatenate([np.asarray(p[b"data"], dtype=np.uint8) for p in parts])
        y = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
        return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), y

    raw_names = _unpickle(root / meta)[names_key]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw_names]
    return read(train_files), read(test_files), names
