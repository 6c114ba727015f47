"""Classify image files with a ready model and its preprocessing (what `lightnets predict` runs).

Every image is read before the model runs, so an unreadable file is reported up front and the
others still get their scores. Images are read and normalized by lightnets.preprocess, as
`lightnets eval` and training's validation read theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lightnets.data.folders import IMAGE_EXTENSIONS, expand_images  # noqa: F401  (re-exported)
from lightnets.preprocess import Preprocessing, mean_std, normalize
from lightnets.preprocess import read_image as read_image  # re-exported: predict reads this way

IMAGE_SUFFIXES = IMAGE_EXTENSIONS  # the old name


@dataclass
class Prediction:
    image: str
    top: list[tuple[str, float]] | None  # (class, probability), best first; None if unreadable
    error: str | None = None


@torch.no_grad()
def classify_images(
    model: nn.Module,
    images: list[str],
    class_names: list[str],
    pre: Preprocessing,
    mode: str = "RGB",
    topk: int = 5,
) -> list[Prediction]:
    """Top-k classes and probabilities of each image, in the order given."""
    from lightnets.errors import unreadable_image_errors

    device = next(model.parameters()).device
    mean, std = mean_std(pre, device)
    results = []
    for path in images:
        try:
            x = read_image(path, pre, mode)
        except unreadable_image_errors() as err:
            results.append(Prediction(path, None, f"{type(err).__name__}: {err}"))
            continue
        probs = model(normalize(x[None].to(device), mean, std)).float().softmax(1)[0]
        top = probs.topk(min(topk, len(class_names)))
        pairs = [(class_names[i], float(p)) for p, i in zip(top.values, top.indices.tolist())]
        results.append(Prediction(path, pairs))
    return results
