"""The CIFAR-10 subset the docs measure on, as an image folder: 400 training and 100 validation
photos a class (4,000 / 1,000), both drawn from CIFAR-10's training set and disjoint.

    python benchmarks/cifar10_subset.py cifar-10-binary.tar.gz cifar10-5k

Reads the *binary* release of CIFAR-10 (cifar-10-binary.tar.gz from
https://www.cs.toronto.edu/~kriz/cifar.html): fixed-size records of one label byte and 3,072
pixel bytes, so nothing is unpickled (the Python release is pickles). Writes
`OUT/train/<class>/NNNNN.jpg` and `OUT/val/<class>/NNNNN.jpg` (32x32 RGB, JPEG quality 95), the
layout every lightnets command reads. The choice of images is fixed by --seed; OUT must not exist.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

import numpy as np

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE  # label byte, then the red, green and blue planes
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]


def read_release(archive: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(class names, labels (N,), images (N, 32, 32, 3) uint8) of CIFAR-10's training set."""
    with tarfile.open(archive) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        missing = [name for name in ["batches.meta.txt", *TRAIN_FILES] if name not in members]
        if missing:
            raise SystemExit(f"{archive}: not CIFAR-10's binary release (no {', '.join(missing)})")
        names = tar.extractfile(members["batches.meta.txt"]).read().decode().split()
        raw = b"".join(tar.extractfile(members[name]).read() for name in TRAIN_FILES)
    if len(raw) % RECORD:
        raise SystemExit(f"{archive}: truncated records")
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    images = records[:, 1:].reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return names, records[:, 0].astype(int), images


def pick(labels: np.ndarray, classes: int, per_class: tuple[int, int], seed: int):
    """Per split, the indices of `per_class` images of every class, disjoint, seeded."""
    rng = np.random.default_rng(seed)
    splits = ([], [])
    for c in range(classes):
        chosen = rng.permutation(np.flatnonzero(labels == c))
        if len(chosen) < sum(per_class):
            raise SystemExit(f"class {c} has {len(chosen)} images, {sum(per_class)} asked for")
        splits[0].extend(chosen[: per_class[0]])
        splits[1].extend(chosen[per_class[0] : sum(per_class)])
    return splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path, help="cifar-10-binary.tar.gz")
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--train-per-class", type=int, default=400)
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists: choose a new folder")
    from PIL import Image

    names, labels, images = read_release(args.archive)
    splits = pick(labels, len(names), (args.train_per_class, args.val_per_class), args.seed)
    for split, indices in zip(("train", "val"), splits):
        for index in indices:
            folder = args.out / split / names[labels[index]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[index]).save(folder / f"{index:05d}.jpg", quality=95)
    print(f"wrote {args.out}: {len(splits[0])} train, {len(splits[1])} val images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
