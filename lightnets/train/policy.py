"""Size-aware training defaults: what a run does with its images when the flags leave it open.

ImageNet's recipe (RandomResizedCrop over 8-100% of the area, eval on an 87.5% centre crop) is
made for 224-px photos. On a 32-px image it trains on crops as small as 9x9 px blown up to 32 and
evaluates on an upscaled centre that cuts off the border. For images of 64 px or less
(`lightnets.checkpoints.SMALL_INPUT_MAX`, the same bound that picks the stride-1 stem) the
defaults are instead the small-image recipe of the CIFAR literature: pad by 1/8 of the side,
random crop back, horizontal flip; evaluation on the whole image. docs/training.md has the
measurements on real photos behind the choice.

A folder without --img-size trains at its images' own size when that is below the model card's
(upscaling 32-px photos to 224 px adds no information and 49x the compute). Whatever is chosen is
written into the run's config (resume and eval see the same values) and printed in the header.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from lightnets.checkpoints import SMALL_INPUT_MAX
from lightnets.data.splits import ImageStats  # noqa: F401  (moved there; re-exported)
from lightnets.train.config import TrainConfig
from lightnets.train.transforms import pad_for

IMAGENET_SCALE = (0.08, 1.0)


def choose(cfg: TrainConfig, card, native_side: int | None) -> TrainConfig:
    """`cfg` with img_size, train_crop, scale and crop_pct decided (explicit values kept)."""
    img_size = cfg.img_size
    card_size = getattr(card, "img_size", 224)
    if img_size is None:
        img_size = native_side if native_side and native_side < card_size else card_size
    small = img_size <= SMALL_INPUT_MAX
    crop = cfg.train_crop
    if crop == "auto":  # an explicit --scale asks for the resized crop it parameterises
        crop = "resize" if cfg.scale is not None or not small else "pad"
    crop_pct = cfg.crop_pct or (1.0 if small else getattr(card, "crop_pct", 0.875))
    return dataclasses.replace(
        cfg,
        img_size=img_size,
        train_crop=crop,
        scale=cfg.scale or IMAGENET_SCALE,
        crop_pct=crop_pct,
    )


def describe(cfg: TrainConfig, given: TrainConfig, native_side: int | None) -> list[str]:
    """Header lines saying what was chosen and why, for the settings the user left open."""
    size = cfg.img_size
    lines = []
    if given.img_size is None and native_side is not None:
        why = "the images' median side" if size == native_side else "the model card's"
        lines.append(f"img size {size} ({why}; --img-size to change)")
    if cfg.train_crop == "pad":
        crop = f"pad {pad_for(size)} + random {size}x{size} crop"
    else:
        lo, hi = cfg.scale
        crop = f"random resized crop {size}x{size} over {lo:g}-{hi:g} of the area"
    flip = f", flip {cfg.hflip:g}" if cfg.hflip else ""
    view = "whole image" if cfg.crop_pct == 1.0 else f"centre {cfg.crop_pct:g} crop"
    auto = given.train_crop == "auto" and given.crop_pct is None and given.scale is None
    reason = f" (chosen for {size}-px images; --train-crop, --scale, --crop-pct to change)"
    lines.append(
        f"augmentation: {crop}{flip}; eval: resize to {size}, {view}" + (reason if auto else "")
    )
    return lines


def data_notes(stats: ImageStats, img_size: int, mode: str, split: str) -> list[str]:
    """What happens to images that do not match the run: other sizes, other colour modes."""
    notes = []
    if not stats.sizes:
        return notes
    sides = sorted({s for size in stats.sizes for s in size})
    if len(set(stats.sizes)) > 1:
        notes.append(
            f"{split}: image sizes vary ({sides[0]}-{sides[-1]} px): each is resized so its "
            f"shorter side is {img_size}, then cropped square"
        )
    small = stats.smaller_than(img_size)
    if small:
        notes.append(f"{split}: {small} image(s) smaller than {img_size} px are upscaled")
    other = {m: n for m, n in stats.modes.items() if m != mode}
    if other:
        kinds = ", ".join(f"{n} {m}" for m, n in sorted(other.items()))
        notes.append(f"{split}: converted to {mode}: {kinds} image(s)")
    return notes


# decoded images may take this share of the machine's memory before `--cache-images auto` declines
CACHE_SHARE = 0.25


def cache_decision(cfg: TrainConfig, stats: ImageStats, channels: int) -> tuple[bool, str]:
    """(keep the decoded images in memory?, the header line saying so)."""
    import os

    need = stats.decoded_bytes(channels)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cache = cfg.cache_images == "on" or (cfg.cache_images == "auto" and need < CACHE_SHARE * ram)
    if not cache:
        why = "--cache-images off" if cfg.cache_images == "off" else "too large for memory"
        return False, f"images decoded every epoch ({need / 2**20:.0f} MB decoded; {why})"
    return True, f"images decoded once, kept in memory ({need / 2**20:.0f} MB)"


def memory_format(cfg: TrainConfig, device_type: str) -> tuple[TrainConfig, list[str]]:
    """`cfg` with channels_last decided (on for CPU training unless set), and the header line
    saying so when it was decided here. Measured on 2 cores (benchmarks/train_step.py, 32 px,
    batch 64): the step of MobileNetV2-0.35 1.35x faster, MixNet-S 1.13-1.2x (oneDNN's depthwise
    kernels are channels_last ones). On CUDA the cuDNN depthwise choice varies: opt-in there."""
    if cfg.channels_last is not None:
        return cfg, []
    on = device_type == "cpu"
    cfg = dataclasses.replace(cfg, channels_last=on)
    return cfg, ["channels_last memory format (faster on CPU; --no-channels-last to change)"] * on


def bn_momentum_note(cfg: TrainConfig, steps_per_epoch: int) -> list[str]:
    """A warning when BatchNorm's running statistics average over more than an epoch of steps
    (TF-style momentum 0.01 is ~100 steps): the eval-mode model then lags the trained one.
    Measured on cifar10-5k (63 steps an epoch), MixNet-S after 3 epochs, 2 seeds: val top-1
    13.0 ± 2.4% with the TF constants against 28.9 ± 0.4% with PyTorch's 0.1, at equal train
    accuracy."""
    m = cfg.bn_momentum
    if m is None or m <= 0 or m * steps_per_epoch >= 1:
        return []
    return [
        f"warning: --bn-momentum {m:g} averages BatchNorm statistics over ~{1 / m:.0f} steps, "
        f"more than an epoch ({steps_per_epoch}): validation accuracy will lag training; "
        "--bn-momentum 0.1 suits this data size"
    ]


def split_notes(class_names: list[str], train_labels, val_labels) -> list[str]:
    """Classes the validation cannot measure: absent from val, or with one training image."""
    train, val = Counter(train_labels), Counter(val_labels)
    notes = []
    missing = [class_names[c] for c in range(len(class_names)) if not val[c]]
    if missing:
        notes.append(
            f"val: no images of {len(missing)} class(es) ({', '.join(missing[:5])}): "
            f"their accuracy is not measured"
        )
    lonely = [class_names[c] for c in range(len(class_names)) if train[c] == 1]
    if lonely:
        notes.append(f"train: one image only for {', '.join(lonely[:5])}")
    empty = [class_names[c] for c in range(len(class_names)) if not train[c]]
    if empty:
        notes.append(f"train: no images of {', '.join(empty[:5])} (the model never sees them)")
    return notes
