"""Image transforms with PIL and torch only (torchvision is not available here).

Every transform is a callable `(img, rng) -> img` taking a `random.Random` that the dataset seeds
from (seed, epoch, sample index). Augmentation is then a pure function of those three numbers: the
same for any number of workers or ranks, and after a resume in the middle of an epoch.

Training augmentation replaces the eval resize and centre crop of lightnets.preprocess and feeds
the rest the same way: workers return uint8 tensors (`to_uint8_tensor`), `normalize` converts whole
batches on the device. The eval side (`eval_transform`, `ResizeCenterCrop`, `normalize`) lives in
lightnets.preprocess and is re-exported here.

AutoAugment is the ImageNet policy the MixNet/EfficientNet TF code trains with ("v0", from
tensorflow/tpu autoaugment.py, arXiv:1805.09501); RandAugment follows arXiv:1909.13719. Deviation:
Posterize keeps 4..8 bits (TF's v0 mapping can keep 0 bits, a black image).
"""

from __future__ import annotations

import math

import numpy as np
from torch import Tensor

from lightnets.preprocess import (  # noqa: F401  (the eval side, re-exported)
    Compose,
    ResizeCenterCrop,
    eval_transform,
    normalize,
    resample,
    to_uint8_tensor,
)


class RandomResizedCrop:
    """A crop with random area share in `scale` and aspect in `ratio`, resized to size x size."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)

    def __call__(self, img, rng):
        w, h = img.size
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = w * h * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
                break
        else:  # fall back to the largest central crop with a ratio in range
            aspect = min(max(w / h, self.ratio[0]), self.ratio[1])
            cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
            cw, ch = min(cw, w), min(ch, h)
            x, y = (w - cw) // 2, (h - ch) // 2
        return img.resize((self.size, self.size), resample("BILINEAR"), box=(x, y, x + cw, y + ch))

    def __repr__(self):
        return f"RandomResizedCrop({self.size}, scale={self.scale})"


def pad_for(size: int) -> int:
    """Padding of RandomPadCrop: 1/8 of the side (4 px at 32, CIFAR's usual)."""
    return max(1, size // 8)


class RandomPadCrop:
    """Pad by `pad` pixels of black on every side, then a random size x size crop (the image is
    first resized to size x size if it is not already): shifts of up to `pad` px that keep the
    whole object, the standard augmentation of small-image training (CIFAR)."""

    def __init__(self, size: int, pad: int):
        self.size, self.pad = size, pad
        self.fit = ResizeCenterCrop(size, 1.0)

    def __call__(self, img, rng):
        from PIL import ImageOps

        if img.size != (self.size, self.size):
            img = self.fit(img)
        img = ImageOps.expand(img, self.pad, fill=0)
        x, y = rng.randint(0, 2 * self.pad), rng.randint(0, 2 * self.pad)
        return img.crop((x, y, x + self.size, y + self.size))

    def __repr__(self):
        return f"RandomPadCrop({self.size}, pad={self.pad})"


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, img, rng):
        from PIL import Image

        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < self.p else img

    def __repr__(self):
        return f"RandomHorizontalFlip({self.p})"


class ColorJitter:
    """Brightness, contrast and saturation, each by a factor in [1-s, 1+s], in random order."""

    def __init__(self, strength: float):
        self.strength = strength

    def __call__(self, img, rng):
        from PIL import ImageEnhance

        ops = [ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color]
        rng.shuffle(ops)
        for op in ops:
            img = op(img).enhance(rng.uniform(1 - self.strength, 1 + self.strength))
        return img

    def __repr__(self):
        return f"ColorJitter({self.strength})"


# --- policy augmentation: op(img, level 0..10, rng)


def _signed(value: float, rng) -> float:
    return -value if rng.random() < 0.5 else value


def _fill(img):
    return (128,) * len(img.getbands())


def _affine(img, matrix):
    from PIL import Image

    return img.transform(
        img.size, Image.Transform.AFFINE, matrix, resample("BILINEAR"), fillcolor=_fill(img)
    )


def _enhance(name):
    def op(img, level, rng):
        from PIL import ImageEnhance

        return getattr(ImageEnhance, name)(img).enhance(level / 10 * 1.8 + 0.1)

    return op


def _ops(name):
    from PIL import ImageOps

    return lambda img, level, rng: getattr(ImageOps, name)(img)


def _solarize_add(img, level, rng):
    add = int(level / 10 * 110)
    lut = [min(255, p + add) if p < 128 else p for p in range(256)]
    return img.point(lut * len(img.getbands()))


def _posterize(img, level, rng):
    from PIL import ImageOps

    return ImageOps.posterize(img, 8 - int(level / 10 * 4))


def _solarize(img, level, rng):
    from PIL import ImageOps

    return ImageOps.solarize(img, int(level / 10 * 256))


OPS = {
    "AutoContrast": _ops("autocontrast"),
    "Equalize": _ops("equalize"),
    "Invert": _ops("invert"),
    "Rotate": lambda img, level, rng: img.rotate(
        _signed(level / 10 * 30, rng), resample("BILINEAR"), fillcolor=_fill(img)
    ),
    "Posterize": _posterize,
    "Solarize": _solarize,
    "SolarizeAdd": _solarize_add,
    "Color": _enhance("Color"),
    "Contrast": _enhance("Contrast"),
    "Brightness": _enhance("Brightness"),
    "Sharpness": _enhance("Sharpness"),
    "ShearX": lambda img, level, rng: _affine(img, (1, _signed(level / 10 * 0.3, rng), 0, 0, 1, 0)),
    "ShearY": lambda img, level, rng: _affine(img, (1, 0, 0, _signed(level / 10 * 0.3, rng), 1, 0)),
    # TF translates by up to 100 px at 224 px; 0.45 of the side keeps that share at any size
    "TranslateX": lambda img, level, rng: _affine(
        img, (1, 0, _signed(level / 10 * 0.45 * img.size[0], rng), 0, 1, 0)
    ),
    "TranslateY": lambda img, level, rng: _affine(
        img, (1, 0, 0, 0, 1, _signed(level / 10 * 0.45 * img.size[1], rng))
    ),
}

# (op, probability, level): one sub-policy is drawn per image (TF autoaugment.py policy_v0)
POLICY_V0 = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
    (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
    (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
    (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
    (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
    (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
    (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)),
    (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
    (("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
    (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
    (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)),
    (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)


class AutoAugment:
    def __init__(self, policy=POLICY_V0):
        self.policy = policy

    def __call__(self, img, rng):
        for name, prob, level in rng.choice(self.policy):
            if rng.random() < prob:
                img = OPS[name](img, level, rng)
        return img

    def __repr__(self):
        return "AutoAugment(v0)"


class RandAugment:
    """`n` ops drawn uniformly, each applied at magnitude `m` (0..10)."""

    def __init__(self, n: int = 2, m: int = 9):
        self.n, self.m = n, m

    def __call__(self, img, rng):
        for name in rng.choices(list(OPS), k=self.n):
            img = OPS[name](img, self.m, rng)
        return img

    def __repr__(self):
        return f"RandAugment(n={self.n}, m={self.m})"


def train_transform(
    size: int,
    scale=(0.08, 1.0),
    hflip=0.5,
    color_jitter=0.0,
    augment="none",
    randaugment_n=2,
    randaugment_m=9,
    crop: str = "resize",
) -> Compose:
    """crop: "resize" (RandomResizedCrop over `scale`) or "pad" (RandomPadCrop by size / 8)."""
    policy = {
        "none": None,
        "autoaugment": AutoAugment(),
        "randaugment": RandAugment(randaugment_n, randaugment_m),
    }[augment]
    return Compose(
        RandomPadCrop(size, pad_for(size)) if crop == "pad" else RandomResizedCrop(size, scale),
        RandomHorizontalFlip(hflip) if hflip > 0 else None,
        policy,
        ColorJitter(color_jitter) if color_jitter > 0 else None,
    )


def mix_batch(x: Tensor, target: Tensor, mixup: float, cutmix: float, seed: int) -> tuple:
    """Mixup (arXiv:1710.09412) or CutMix (arXiv:1905.04899) with the batch reversed.

    `target` is (N, classes) probabilities; with both alphas > 0 each batch picks one of them.
    The draw depends only on `seed`, so a resumed run mixes the same way.
    """
    gen = np.random.default_rng(seed)
    use_cutmix = cutmix > 0 and (mixup <= 0 or gen.random() < 0.5)
    lam = float(gen.beta(cutmix, cutmix) if use_cutmix else gen.beta(mixup, mixup))
    flipped = x.flip(0)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(gen.integers(h)), int(gen.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    else:
        x = x * lam + flipped * (1 - lam)
    return x, target * lam + target.flip(0) * (1 - lam)
