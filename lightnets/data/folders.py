"""Image folders: classes from sub-directories, every image's header checked once, sizes probed;
and `expand_images`, the image files below a folder (predict, calibration).

    DATA/train/<class>/**.jpg   (and optionally DATA/val/<class>/**)

Unreadable files are reported with the reason PIL gives, or with `strict` stop the run.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lightnets.errors import ConfigError, unreadable_image_errors

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


def class_dirs(root: Path) -> list[str]:
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise FileNotFoundError(f"{root}: no class sub-directories")
    return names


def _check_image(path: str) -> tuple[str | None, tuple[int, int], str]:
    """(why `path` is not an image PIL can open or None, its size, its mode): header only."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            size, mode = img.size, img.mode
            img.verify()
    except unreadable_image_errors() as err:
        return f"{path}: {type(err).__name__}: {err}", (0, 0), ""
    return None, size, mode


def scan_folder(root: Path, class_names: list[str], strict: bool = False, stats=None):
    """(paths, labels, skipped) of root/<class>/** images; classes outside `class_names` fail.
    `stats` (a lightnets.data.splits.ImageStats) collects the sizes and modes of the readable
    images."""
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
        checked = list(pool.map(_check_image, paths))
    bad = [problem for problem, _, _ in checked if problem]
    if bad and strict:
        raise ConfigError(f"unreadable image {bad[0]} (drop --strict to skip it)")
    keep = [i for i, (problem, _, _) in enumerate(checked) if problem is None]
    if stats is not None:
        for i in keep:
            stats.add(checked[i][1], checked[i][2])
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


def expand_images(paths: list[str | os.PathLike]) -> list[str]:
    """Files as given; a directory becomes the images below it (sorted, recursive)."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(
                str(p)
                for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            )
        else:
            out.append(str(path))
    return out


def probe_side(data: str, fmt: str, limit: int = 200) -> int | None:
    """The median shorter side of up to `limit` training images, read from their headers (a
    second or less for any folder); None for formats of known size."""
    if fmt != "folder":
        return 32 if fmt in ("cifar10", "cifar100", "digits") else None
    from PIL import Image

    sides = []
    for name in class_dirs(Path(data) / "train"):
        folder = Path(data) / "train" / name
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        for f in files[: max(1, limit // 10)]:
            try:
                with Image.open(folder / f) as img:
                    sides.append(min(img.size))
            except unreadable_image_errors():  # scan_folder reports it
                continue
    return int(np.median(sides)) if sides else None
