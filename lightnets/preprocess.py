"""One way from an image to the tensor a model expects; every reader of images goes through here.

A model trained at `img_size` with `mean` / `std` (a `Preprocessing`: the run's config, else the
model card, else ImageNet's; an exported artifact's sidecar carries the same four fields) is fed

    1. the file opened with Pillow in the model's colour mode, "RGB" or "L"        open_image
    2. the shorter side resized to floor(img_size / crop_pct) (bicubic), then the
       central img_size x img_size crop                                            ResizeCenterCrop
    3. a (C, H, W) uint8 tensor                                                    to_uint8_tensor
    4. batched, then (x / 255 - mean) / std in float32                             normalize

`read_image` is steps 1-3 and `model_input` step 4. Steps 1-3 run where the images are read
(DataLoader workers: uint8 is 4x less to move between processes), step 4 on whole batches on the
device. Training's validation, `lightnets eval` (of checkpoints and of artifacts), `lightnets
predict`, int8 calibration and the export checks all feed images this way; training augmentation
(lightnets.train.transforms) replaces step 2 only. tests/test_preprocess.py checks that these
paths give bit-identical tensors for the same file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightnets.cards import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class Preprocessing:
    """What turns an image into the model's input: resize/crop side, eval crop share, mean/std
    (one value each for a one-channel model)."""

    img_size: int
    crop_pct: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def mode(self) -> str:
        """The Pillow mode images are read in (`image_mode` of the channels mean/std has)."""
        return image_mode(len(self.mean))

    def to_dict(self) -> dict:
        return {
            "img_size": self.img_size,
            "crop_pct": self.crop_pct,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, values: dict) -> Preprocessing:
        """The preprocessing `to_dict` (or an artifact's sidecar) wrote."""
        mean, std = tuple(values["mean"]), tuple(values["std"])
        return cls(int(values["img_size"]), float(values["crop_pct"]), mean, std)


def image_mode(in_chans: int) -> str:
    """The Pillow mode a model with `in_chans` input channels reads images in: "L" for one grey
    channel, else "RGB"."""
    return "L" if in_chans == 1 else "RGB"


def preprocessing(cfg, card) -> Preprocessing:
    """Input size, eval crop and mean/std from the config (img_size, crop_pct, in_chans), else
    the model card (a lightnets.cards.ModelCard, or None), else ImageNet's."""
    mean = getattr(card, "mean", IMAGENET_MEAN)
    std = getattr(card, "std", IMAGENET_STD)
    if cfg.in_chans == 1:  # one grey channel: the average of the RGB statistics
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return Preprocessing(
        img_size=cfg.img_size or getattr(card, "img_size", 224),
        crop_pct=cfg.crop_pct or getattr(card, "crop_pct", 0.875),
        mean=tuple(mean),
        std=tuple(std),
    )


# ------------------------------------------------------------------ steps 1-3: one image


def open_image(path: str | os.PathLike, mode: str):
    """The image file at `path` as a Pillow image in `mode` (decoded now, the file closed)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        # palette images with transparency go through RGBA so the alpha is dropped cleanly
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        return img.convert(mode)


def resample(name: str):
    """A Pillow resampling filter by name ("BILINEAR", "BICUBIC")."""
    from PIL import Image

    return getattr(Image.Resampling, name)


class Compose:
    """Transforms `(img, rng) -> img` applied in order (None entries are left out)."""

    def __init__(self, *transforms):
        self.transforms = [t for t in transforms if t is not None]

    def __call__(self, img, rng=None):  # eval transforms need no rng
        for t in self.transforms:
            img = t(img, rng)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


class ResizeCenterCrop:
    """Eval preprocessing: shorter side to floor(size / crop_pct), then the central size x size."""

    def __init__(self, size: int, crop_pct: float = 0.875):
        self.size, self.crop_pct = size, crop_pct

    def __call__(self, img, rng=None):
        w, h = img.size
        short = math.floor(self.size / self.crop_pct)
        nw, nh = (
            (short, max(short, round(h * short / w)))
            if w <= h
            else (max(short, round(w * short / h)), short)
        )
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), resample("BICUBIC"))
        x, y = (nw - self.size) // 2, (nh - self.size) // 2
        return img.crop((x, y, x + self.size, y + self.size))

    def __repr__(self):
        return f"ResizeCenterCrop({self.size}, crop_pct={self.crop_pct})"


def eval_transform(size: int, crop_pct: float = 0.875) -> Compose:
    """Step 2 for a model of input side `size` and eval crop share `crop_pct`."""
    return Compose(ResizeCenterCrop(size, crop_pct))


def to_uint8_tensor(img) -> Tensor:
    """PIL image -> (C, H, W) uint8 tensor."""
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def read_image(path: str | os.PathLike, pre: Preprocessing, mode: str | None = None) -> Tensor:
    """Steps 1-3: the image file as the (C, H, W) uint8 tensor the eval transform makes of it
    (`mode` defaults to the preprocessing's)."""
    img = open_image(path, mode or pre.mode)
    return to_uint8_tensor(eval_transform(pre.img_size, pre.crop_pct)(img))


# ------------------------------------------------------------------ step 4: a batch


def normalize(batch: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(N, C, H, W) uint8 -> float, (x / 255 - mean) / std; mean/std shaped (1, C, 1, 1)."""
    return (batch.float().div_(255) - mean) / std


def mean_std(pre: Preprocessing, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """The preprocessing's mean and std as (1, C, 1, 1) float32 tensors on `device`."""
    mean = torch.tensor(pre.mean, device=device).view(1, -1, 1, 1)
    return mean, torch.tensor(pre.std, device=device).view(1, -1, 1, 1)


def model_input(batch: Tensor, pre: Preprocessing, device: str | torch.device = "cpu") -> Tensor:
    """Step 4: a (N, C, H, W) uint8 batch (`read_image`s stacked) as the model's float input."""
    return normalize(batch.to(device), *mean_std(pre, device))
