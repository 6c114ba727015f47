"""Model registry: look up a model's builder and card by name or alias, with every family loaded.

The tables and `register_model` live in lightnets.cards, below the model families that register
into them; the lookups here import `lightnets.models` (every family, once) before they look, so
they always see the whole zoo. `ModelCard`, `register_model` and the mean/std constants are
re-exported from lightnets.cards.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from lightnets import cards
from lightnets.cards import ALIASES as _ALIASES  # noqa: F401  (the same dicts, for old callers)
from lightnets.cards import BUILDERS as _BUILDERS  # noqa: F401
from lightnets.cards import CARDS as _CARDS  # noqa: F401
from lightnets.cards import (  # noqa: F401  (re-exported)
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    ModelCard,
    register_model,
)


def _load_families() -> None:
    import lightnets.models  # noqa: F401  (registers every family on import)


def resolve_name(name: str) -> str:
    """The canonical name for `name` or its alias; otherwise a KeyError with close matches."""
    _load_families()
    return cards.resolve_name(name)


def list_models(
    pattern: str = "*", include_aliases: bool = False, include_custom: bool = False
) -> list[str]:
    """Registered names matching a shell-style `pattern`, sorted; `include_custom` adds the
    builders that need an architecture table (`mixnet_custom`), which no name alone builds."""
    _load_families()
    return cards.list_models(pattern, include_aliases, include_custom)


def model_card(name: str) -> ModelCard:
    _load_families()
    return cards.model_card(name)


def model_builder(name: str) -> Callable[..., nn.Module]:
    _load_families()
    return cards.model_builder(name)
