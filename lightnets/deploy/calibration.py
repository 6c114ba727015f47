"""int8 calibration images: which files, read how, and as what the quantizers take.

`calibration_dir` says which folder, `calibration_files` draws them (seeded) from it,
`calibration_batches` reads them through the model's eval preprocessing into normalized NCHW
float32 batches, `as_batches` hands those to a quantizer as arrays. lightnets.deploy.quantize and
lightnets.deploy.quantize_nncf calibrate on them; the int8 export check and the reference set run
on them too.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lightnets import preprocess
from lightnets.data.folders import expand_images
from lightnets.errors import ConfigError, unreadable_image_errors


def calibration_files(folder: str | os.PathLike, count: int, seed: int = 0) -> list[str]:
    """`count` images drawn (seeded) from below `folder`; its train/ subfolder when it has one.

    ConfigError when the folder holds no images."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--calibrate {root}: no such directory")
    if (root / "train").is_dir():
        root = root / "train"
    files = expand_images([root])
    if not files:
        raise ConfigError(f"--calibrate {root}: no images below it (jpg, png, ...)")
    if len(files) > count:
        files = sorted(random.Random(seed).sample(files, count))
    return files


def calibration_batches(
    files: Sequence[str], preprocessing, in_chans: int = 3, batch: int = 8
) -> list[Tensor]:
    """The images as normalized NCHW float32 batches, read the way `lightnets eval` reads them
    (lightnets.preprocess: resize, centre crop, then mean/std)."""
    mode = preprocess.image_mode(in_chans)
    images = []
    for path in files:
        try:
            images.append(preprocess.read_image(path, preprocessing, mode))
        except unreadable_image_errors() as err:
            raise ConfigError(f"calibration image {path}: {type(err).__name__}: {err}") from None
    x = preprocess.model_input(torch.stack(images), preprocessing)
    return list(torch.split(x.contiguous(), batch))


def as_batches(calibration: Iterable[Tensor]) -> list[np.ndarray]:
    """The calibration batches as arrays, as quantizers take them; ConfigError when empty."""
    batches = [x.numpy() if isinstance(x, Tensor) else np.asarray(x) for x in calibration]
    if not batches:
        raise ConfigError("int8 needs calibration images (none were given)")
    return batches


def default_calibration_dir(loaded) -> Path | None:
    """The training images of the run a checkpoint came from, when they are an image folder."""
    data = (loaded.config or {}).get("data")
    if not data or not Path(data).is_dir():
        return None
    return Path(data) / "train" if (Path(data) / "train").is_dir() else Path(data)


def calibration_dir(loaded, folder=None, beside=None) -> str | os.PathLike | None:
    """Where int8 calibrates: `folder` when given; else the train/ folder beside `beside` (the
    labelled images `lightnets deploy` evaluates on) when there is one; else the run's training
    images (`default_calibration_dir`). None when there are none."""
    if folder is None and beside is not None and (Path(beside) / "train").is_dir():
        folder = Path(beside) / "train"
    return folder or default_calibration_dir(loaded)
