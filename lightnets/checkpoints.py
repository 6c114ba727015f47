"""One way from a run directory or weights file to a ready model, for every command.

`load_checkpoint(path)` reads a run dir (best/, else last/), a checkpoint dir or a weights file,
rebuilds the model the run trained (name, classes, input channels and stem from its saved config),
loads the EMA or raw weights and returns it with the run's preprocessing and class names.
`build_model` and `preprocessing` are the same rules `lightnets train` uses, so a model is built
the same way for training, evaluation, prediction, export and inspection.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lightnets.registry import IMAGENET_MEAN, IMAGENET_STD, ModelCard, model_card

# images this small lose too much to a stride-2 stem: train and run them with a stride-1 stem
SMALL_INPUT_MAX = 64


def wants_small_input(img_size: int, small_input: bool | None = None) -> bool:
    """The stem rule: an explicit choice wins, else stride 1 for images of 64 px or less."""
    return small_input if small_input is not None else img_size <= SMALL_INPUT_MAX


@dataclass(frozen=True)
class Preprocessing:
    """What turns an image into the model's input: resize/crop side, eval crop share, mean/std."""

    img_size: int
    crop_pct: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        return {
            "img_size": self.img_size,
            "crop_pct": self.crop_pct,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def preprocessing(cfg, card: ModelCard | None) -> Preprocessing:
    """Input size, eval crop and mean/std from the config, else the model card, else ImageNet's."""
    mean = getattr(card, "mean", IMAGENET_MEAN)
    std = getattr(card, "std", IMAGENET_STD)
    if cfg.in_chans == 1:  # one grey channel: the average of the RGB statistics
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return Preprocessing(
        img_size=cfg.img_size or getattr(card, "input_size", 224),
        crop_pct=cfg.crop_pct or getattr(card, "crop_pct", 0.875),
        mean=tuple(mean),
        std=tuple(std),
    )


def build_model(cfg, num_classes: int, img_size: int) -> nn.Module:
    """The registry model a TrainConfig describes (stem, dropout, pretrained weights)."""
    import lightnets

    kwargs = {}
    if wants_small_input(img_size, cfg.small_input):
        kwargs["small_input"] = True
    if cfg.drop_rate is not None:
        kwargs["drop_rate"] = cfg.drop_rate
    if cfg.drop_path_rate is not None:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    model = lightnets.create_model(
        cfg.model, num_classes=num_classes, in_chans=cfg.in_chans, **kwargs
    )
    if cfg.pretrained:
        from lightnets.weights import load_weights

        load_weights(model, cfg.pretrained, ignore_head=_head_differs(model, cfg.pretrained))
    return model


def _head_differs(model: nn.Module, source: str) -> bool:
    """True when the pretrained classifier has another class count (fine-tuning to new classes)."""
    from lightnets.weights import read_state_dict

    head = getattr(model, "classifier", None)
    weight = getattr(head, "weight", None)
    if weight is None:
        return False
    stored = read_state_dict(source).get("classifier.weight")
    return stored is not None and stored.shape != weight.shape


__all__ = ["Preprocessing", "build_model", "model_card", "preprocessing", "wants_small_input"]
