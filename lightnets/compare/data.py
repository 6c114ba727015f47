"""The data every trial of a compare trains on: checked before anything slow, and optionally cut to
a few images per class (a folder of symbolic links, so each trial still reads a plain image folder
through `lightnets train --data`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightnets.errors import ConfigError
from lightnets.files import write_text

# the suffixes `lightnets train` reads in an image folder
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _is_cifar(root: Path) -> bool:
    names = ("data_batch_1", "train", "cifar-10-batches-py", "cifar-100-python")
    return any((root / n).is_file() for n in names[:2]) or any(
        (root / n).is_dir() for n in names[2:]
    )


def _class_dirs(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        found += [Path(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_SUFFIXES)]
    return found


def data_classes(data: str, name: str = "--data") -> int | None:
    """Classes in `data` ('digits', a CIFAR directory or an image folder root/train/<class>/);
    None where the count is the loader's to find (CIFAR). ConfigError below two classes; `name`
    is how the command calls the data in its messages."""
    if data == "digits":
        return 10
    root = Path(data)
    if not root.is_dir():
        hint = "--data digits" if name == "--data" else "digits"
        raise FileNotFoundError(f"{name} {data}: no such directory (or use {hint})")
    train = root / "train"
    if not train.is_dir():
        if _is_cifar(root):
            return None
        raise ConfigError(f"{name} {data}: expected an image folder {train}/<class>/<images>")
    classes = [c for c in _class_dirs(train) if _images(train / c)]
    if len(classes) < 2:
        raise ConfigError(
            f"{name} {data}: {len(classes)} class folder(s) with images in {train}; training "
            "needs at least two classes"
        )
    return len(classes)


def subset_folder(data: str, per_class: int, out: Path) -> Path:
    """`out` holding at most `per_class` images of each class of each split of `data` (the first
    ones in file-name order), as symbolic links; rebuilt only when it is missing or different."""
    root = Path(data)
    if data == "digits" or not (root / "train").is_dir():
        raise ConfigError("--images-per-class needs an image folder (root/train/<class>/...)")
    manifest = {"source": str(root.resolve()), "per_class": per_class}
    stamp = out / "subset.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == manifest:
        return out
    for split in ("train", "val"):
        if not (root / split).is_dir():
            continue
        for name in _class_dirs(root / split):
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.iterdir():
                old.unlink()
            for i, image in enumerate(_images(root / split / name)[:per_class]):
                # flat names: a class folder may nest sub-folders with equal file names
                (folder / f"{i:06d}{image.suffix.lower()}").symlink_to(image.resolve())
    write_text(stamp, json.dumps(manifest))
    return out
