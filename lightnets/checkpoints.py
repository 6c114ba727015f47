"""One way from a run directory or weights file to a ready model, for every command.

`load_checkpoint(path)` reads a run dir (best/, else last/), a checkpoint dir or a weights file,
rebuilds the model the run trained (name, classes, input channels and stem from its saved config),
loads the EMA or raw weights and returns it with the run's preprocessing and class names.
`build_model` is the rule `lightnets train` builds with, so a model is built the same way for
training, evaluation, prediction, export and inspection; its preprocessing comes from
lightnets.preprocess (`Preprocessing`, `preprocessing`: re-exported here).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets import rundir
from lightnets.errors import CheckpointError, ConfigError
from lightnets.preprocess import (  # noqa: F401  (Preprocessing, preprocessing: re-exported)
    Preprocessing,
    image_mode,
    preprocessing,
)
from lightnets.registry import ModelCard, model_card, resolve_name

# images this small lose too much to a stride-2 stem: train and run them with a stride-1 stem
SMALL_INPUT_MAX = 64


def wants_small_input(img_size: int, small_input: bool | None = None) -> bool:
    """The stem rule: an explicit choice wins, else stride 1 for images of 64 px or less."""
    return small_input if small_input is not None else img_size <= SMALL_INPUT_MAX


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
    if cfg.arch is not None:  # read and checked against the input size before anything is built
        from lightnets.models.arch import check_fits, read_arch

        kwargs["arch"] = read_arch(cfg.arch)
        check_fits(kwargs["arch"], img_size, wants_small_input(img_size, cfg.small_input))
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


# ------------------------------------------------------------------ reading a checkpoint


def weights_path(path: str | os.PathLike, prefer_ema: bool = True) -> Path:
    """The weights file a --checkpoint names: a run dir resolves to best/ (else last/), a
    checkpoint dir to its EMA weights when present and `prefer_ema`, else model.safetensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--checkpoint {path}: no such file or directory")
    if not path.is_dir():
        return path
    if not rundir.is_checkpoint_dir(path):  # a run dir
        found = rundir.find_checkpoint(path, rundir.BEST)
        found = found or rundir.find_checkpoint(path, rundir.LAST)
        if found is None:
            raise CheckpointError(
                f"--checkpoint {path}: no best/ or last/ checkpoint and no model.safetensors"
            )
        path = found
    ema = path / rundir.EMA_WEIGHTS
    return ema if prefer_ema and ema.is_file() else path / rundir.MODEL_WEIGHTS


def read_checkpoint(
    path: str | os.PathLike, prefer_ema: bool = True
) -> tuple[dict[str, Tensor], dict, dict, Path]:
    """(state dict, training config, metadata, weights file) of any --checkpoint."""
    from lightnets.weights import read_weights_file

    source = str(path)
    file = source if source.startswith(("http://", "https://")) else weights_path(path, prefer_ema)
    state, metadata = read_weights_file(file)
    config = metadata.get("config") or {}
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError:
            raise CheckpointError(f"{file}: its config metadata is not JSON") from None
    return state, config, metadata, Path(file)


def infer_shapes(state: dict[str, Tensor]) -> dict:
    """num_classes from the classifier, in_chans from the stem's first convolution (safetensors
    files list keys alphabetically, so "first in the file" is not "first in the network")."""
    out = {}
    if "classifier.weight" in state:
        out["num_classes"] = state["classifier.weight"].shape[0]
    stem = sorted(k for k, v in state.items() if k.startswith("stem.") and v.ndim == 4)
    if stem:
        out["in_chans"] = state[stem[0]].shape[1]
    return out


@dataclass
class LoadedModel:
    """A model ready for inference and everything needed to feed it like its training did."""

    model: nn.Module
    name: str
    preprocessing: Preprocessing
    class_names: list[str]
    in_chans: int
    config: dict = field(default_factory=dict)  # the run's TrainConfig as saved ({} for files)
    source: Path | None = None  # the weights file read (None: random init)

    @property
    def image_mode(self) -> str:
        return image_mode(self.in_chans)


def load_checkpoint(
    checkpoint: str | os.PathLike | None,
    model_name: str | None = None,
    *,
    prefer_ema: bool = True,
    img_size: int | None = None,
    device: str | torch.device = "cpu",
    load: bool = True,
    **model_kwargs,
) -> LoadedModel:
    """The model a checkpoint holds, built as it was trained, weights loaded, in eval mode.

    `checkpoint` is a run dir, a checkpoint dir, a weights file, an https URL or None (random
    init of `model_name`). The model name, classes, input channels, stem and image size come
    from the run's saved config; a plain weights file needs `model_name` and gives classes and
    channels by the shapes of its tensors. `load=False` builds the same architecture at random
    init (a baseline). `model_kwargs` (num_classes, in_chans, small_input...) apply where the
    checkpoint does not decide them.
    """
    state, config, metadata, source = {}, {}, {}, None
    if checkpoint is not None:
        state, config, metadata, source = read_checkpoint(checkpoint, prefer_ema)
    name = _model_name(model_name, config, checkpoint)
    card = model_card(name)
    class_names = json.loads(metadata["class_names"]) if "class_names" in metadata else None
    kwargs = _model_kwargs(model_kwargs, card, state, config, metadata, source, class_names)
    in_chans = kwargs.get("in_chans", 3)
    pre = _preprocessing(config, card, in_chans, img_size)
    import lightnets

    model = lightnets.create_model(name, **{k: v for k, v in kwargs.items() if v is not None})
    if state and load:
        try:
            lightnets.load_weights(model, state)
        except ConfigError as err:
            raise CheckpointError(f"{source} does not fit {name}: {err}") from None
    if class_names is None:
        n = getattr(model, "num_classes", 0) or 0
        class_names = [str(i) for i in range(n)]
    return LoadedModel(
        model=model.to(device).eval(),
        name=name,
        preprocessing=pre,
        class_names=class_names,
        in_chans=in_chans,
        config=config,
        source=source,
    )


def _model_kwargs(model_kwargs: dict, card, state: dict, config: dict, metadata: dict,
                  source: Path | None, class_names: list[str] | None) -> dict:  # fmt: skip
    """create_model's keywords: what the checkpoint decides (shapes, the run's in_chans, stem
    and architecture file, the classes) over the caller's `model_kwargs`."""
    from lightnets.weights import is_timm_layout

    kwargs = {k: v for k, v in model_kwargs.items() if v is not None}
    if state and not is_timm_layout(state):
        kwargs.update(infer_shapes(state))
    if config.get("in_chans"):
        kwargs["in_chans"] = config["in_chans"]
    if "arch" in metadata:
        kwargs["arch"] = _carried_arch(metadata["arch"], kwargs.get("arch"), source)
    if class_names is not None and card.embedding_dim is None:
        kwargs.setdefault("num_classes", len(class_names))
    # the stem follows the size the run TRAINED at (an export at another size keeps that stem)
    small = kwargs.pop("small_input", None)
    if config.get("small_input") is not None or config.get("img_size"):
        small = wants_small_input(config.get("img_size") or 0, config.get("small_input"))
    if small:
        kwargs["small_input"] = True
    return kwargs


def _model_name(requested: str | None, config: dict, checkpoint) -> str:
    trained = config.get("model")
    if requested is None:
        if trained is None:
            raise ConfigError(
                f"--checkpoint {checkpoint} carries no training config: name the model"
            )
        return resolve_name(trained)
    name = resolve_name(requested)  # UnknownNameError with close matches
    if trained is not None and resolve_name(trained) != name:
        raise CheckpointError(f"--checkpoint {checkpoint} holds {trained}, not {requested}")
    return name


def _carried_arch(text: str, asked, source: Path | None) -> dict:
    """The architecture table a checkpoint carries; an --arch given as well must equal it."""
    from lightnets.models.arch import Architecture, as_architecture

    try:
        carried = Architecture.from_dict(json.loads(text), f"{source} architecture")
    except (json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{source}: its architecture metadata is unreadable: {err}") from None
    if asked is not None and as_architecture(asked) != carried:
        raise CheckpointError(f"{source} carries its own architecture, not the one of --arch")
    return carried.to_dict()


def _preprocessing(config: dict, card: ModelCard, in_chans: int, img_size: int | None):
    from types import SimpleNamespace

    cfg = SimpleNamespace(
        in_chans=in_chans,
        img_size=img_size or config.get("img_size"),
        crop_pct=config.get("crop_pct"),
    )
    return preprocessing(cfg, card)


__all__ = [
    "LoadedModel",
    "Preprocessing",
    "build_model",
    "load_checkpoint",
    "preprocessing",
    "read_checkpoint",
    "wants_small_input",
]
