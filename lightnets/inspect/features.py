"""Feature maps of a network for one image: read and normalise the image, capture layer outputs.

The layers are the stem and every block of every stage for lightnets models (VGNet's "adjacent
layers"), and every depthwise layer for other modules.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets.errors import (
    ConfigError,
    MissingDependencyError,
    UnknownNameError,
    unreadable_image_errors,
)
from lightnets.inspect.kernels import collect_depthwise_kernels
from lightnets.preprocess import image_mode, normalize, open_image, resample, to_uint8_tensor


def load_image(
    path: str | Path,
    size: int | tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    in_chans: int = 3,
) -> Tensor:
    """(1, in_chans, H, W) float tensor: the whole image resized to `size` (bilinear, no crop: a
    feature map covers all of it), normalised with mean/std as lightnets.preprocess does.

    One input channel reads the image as grayscale and uses the average of mean and std.
    """
    try:
        import PIL  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(
            "reading images needs Pillow: pip install lightnets[train]"
        ) from err
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if in_chans not in (1, 3):
        raise ConfigError(f"images can feed 1 or 3 input channels, the model has {in_chans}")
    h, w = (size, size) if isinstance(size, int) else size
    try:
        img = open_image(path, image_mode(in_chans)).resize((w, h), resample("BILINEAR"))
    except unreadable_image_errors() as err:
        raise ConfigError(f"cannot read image {path}: {err}") from None
    if in_chans == 1:
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    stats = (torch.tensor(v[:in_chans], dtype=torch.float32).view(1, -1, 1, 1) for v in (mean, std))
    return normalize(to_uint8_tensor(img)[None], *stats)


def default_feature_layers(model: nn.Module) -> list[str]:
    """Stem and every block of every stage (lightnets models), else every depthwise layer."""
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.Sequential) and hasattr(model, "stem"):
        names = ["stem"]
        for i, stage in enumerate(stages):
            blocks = stage if isinstance(stage, nn.Sequential) else [stage]
            names += [f"stages.{i}.{j}" for j in range(len(blocks))]
        return names
    names = []
    for record in collect_depthwise_kernels(model).values():
        name = record.parent or record.name
        if name not in names:
            names.append(name)
    return names


def capture_features(
    model: nn.Module, x: Tensor, layers: Sequence[str] | None = None
) -> OrderedDict[str, Tensor]:
    """Run `model(x)` in eval mode under no_grad and return the outputs of `layers` (in order)."""
    modules = dict(model.named_modules())
    layers = list(layers) if layers is not None else default_feature_layers(model)
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise UnknownNameError(f"no layer named {unknown[0]!r} in {type(model).__name__}")
    captured: dict[str, Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _inp, out, name=name: captured.__setitem__(name, out.detach().cpu())
        )
        for name in layers
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return OrderedDict(
        (name, captured[name])
        for name in layers
        if name in captured and isinstance(captured[name], Tensor) and captured[name].ndim == 4
    )
