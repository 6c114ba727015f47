"""In-memory datasets that ship as arrays: scikit-learn's digits and CIFAR-10/100 python pickles.

Nothing is downloaded. `digits` is scikit-learn's 8x8 handwritten digits (1,797 images, shipped
with the package), upsampled to 32x32 so that `lightnets train` runs with no data at all. CIFAR
pickles are read with an unpickler that rebuilds numpy arrays only.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np

from lightnets.errors import ConfigError, MissingDependencyError


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


def cifar_root(root: Path, fmt: str) -> Path | None:
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
    train_files, test_files, _, label_key, _, _ = _CIFAR_FILES[fmt]

    def read(files):
        parts = [_unpickle(root / f) for f in files]
        x = np.concatenate([np.asarray(p[b"data"], dtype=np.uint8) for p in parts])
        y = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
        return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), y

    return read(train_files), read(test_files), read_cifar_names(root, fmt)


def read_cifar_names(root: Path, fmt: str) -> list[str]:
    """Class names from the CIFAR meta file (small: read before the batches to check the data)."""
    _, _, meta, _, names_key, _ = _CIFAR_FILES[fmt]
    raw_names = _unpickle(root / meta)[names_key]
    return [n.decode() if isinstance(n, bytes) else str(n) for n in raw_names]
