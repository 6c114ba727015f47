"""Model cards and the tables model families register into: a plain dict of builders, their
cards, and the aliases users know them by.

Families register themselves with `@register_model(card=ModelCard(...))` when `lightnets.models`
is imported. This module sits below the families and imports none of them, so the lookups here
see only what has registered so far; lightnets.registry (the public lookups) loads every family
first.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from lightnets._deprecation import renamed_attribute, renamed_kwargs
from lightnets.errors import ConfigError, UnknownNameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@renamed_kwargs(input_size="img_size")
@dataclass(frozen=True)
class ModelCard:
    """Everything lightnets knows about a model besides its code: paper, figures, preprocessing.

    `params_m`, `macs_m` and `top1` are the paper's (rounded) figures. `ref_params` and `ref_macs_m`
    are exact measurements of a reference implementation (timm, torchvision, cv-models) at
    `img_size`, with MACs counted by torch.utils.flop_counter over convolutions and linear layers.
    """

    paper: str
    params_m: float | None = None
    macs_m: float | None = None
    top1: float | None = None
    img_size: int = 224  # input side of the figures, and the default preprocessing size
    min_input: int = 32
    embedding_dim: int | None = None
    ref_params: int | None = None
    ref_macs_m: float | None = None
    ref_source: str | None = None
    timm_name: str | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    note: str = ""
    aliases: tuple[str, ...] = field(default=())
    needs_arch: bool = False  # built from an architecture table (arch=...), not by name alone

    input_size = renamed_attribute("img_size")


BUILDERS: dict[str, Callable[..., nn.Module]] = {}
CARDS: dict[str, ModelCard] = {}
ALIASES: dict[str, str] = {}


def register_model(fn=None, *, name: str | None = None, card: ModelCard | None = None):
    """Store `fn` under `name` (default: its own name) and return it unchanged."""

    def add(fn):
        key = name or fn.__name__
        if key in BUILDERS or key in ALIASES:
            raise ConfigError(f"model {key!r} is registered twice")
        BUILDERS[key] = fn
        CARDS[key] = card if card is not None else ModelCard(paper="")
        for alias in CARDS[key].aliases:
            if alias in BUILDERS or alias in ALIASES:
                raise ConfigError(f"alias {alias!r} of {key!r} is already taken")
            ALIASES[alias] = key
        return fn

    return add(fn) if fn is not None else add


def resolve_name(name: str) -> str:
    """The canonical name for `name` or its alias; otherwise a KeyError with close matches."""
    if name in BUILDERS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    close = difflib.get_close_matches(name, [*BUILDERS, *ALIASES], n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `lightnets models` lists them"
    raise UnknownNameError(f"unknown model {name!r}{hint}")


def list_models(
    pattern: str = "*", include_aliases: bool = False, include_custom: bool = False
) -> list[str]:
    """Registered names matching a shell-style `pattern`, sorted; `include_custom` adds the
    builders that need an architecture table (`mixnet_custom`), which no name alone builds."""
    names = [*BUILDERS, *ALIASES] if include_aliases else list(BUILDERS)
    if not include_custom:
        names = [n for n in names if not CARDS[ALIASES.get(n, n)].needs_arch]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def model_card(name: str) -> ModelCard:
    return CARDS[resolve_name(name)]


def model_builder(name: str) -> Callable[..., nn.Module]:
    return BUILDERS[resolve_name(name)]
