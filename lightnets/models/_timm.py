"""timm state dicts -> lightnets layout.

Each family that timm also has declares its key renames next to its table, as an ordered list of
(regex, replacement) pairs, and registers them here with `register_timm_rules`. A key that no rule
matches, or a result that the lightnets model does not have, is an error: a converter that silently
drops weights is worse than none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from torch import Tensor

from lightnets.cards import list_models, model_card, resolve_name
from lightnets.errors import ConfigError, UnknownNameError

Rules = Sequence[tuple[str, str]]
_RULES: dict[str, list[tuple[re.Pattern, str]]] = {}


def register_timm_rules(names: Iterable[str], rules: Rules) -> None:
    """Use `rules` (full-match regex -> replacement; first match wins) for the models `names`."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    for name in names:
        _RULES[name] = compiled


def _lightnets_name(name: str) -> str:
    """Accept a lightnets name, an alias, or the timm name recorded in a card."""
    try:
        return resolve_name(name)
    except KeyError:
        for candidate in list_models():
            if model_card(candidate).timm_name == name:
                return candidate
        raise


def rename_key(name: str, key: str) -> str:
    canonical = _lightnets_name(name)
    if canonical not in _RULES:
        known = ", ".join(sorted(_RULES)) or "none"
        raise UnknownNameError(f"no timm converter for {canonical!r}; models with one: {known}")
    for pattern, repl in _RULES[canonical]:
        match = pattern.fullmatch(key)
        if match:
            return match.expand(repl)
    raise ConfigError(f"{canonical}: timm key {key!r} matches no conversion rule")


def convert(name: str, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename every key of a timm state dict of model `name`; values are shared, not copied."""
    return {rename_key(name, key): value for key, value in state_dict.items()}
