"""Safe weight loading: safetensors or torch files with weights_only=True; timm layouts converted.

Nothing is downloaded unless the user passes an https URL. Mismatches are errors that list what is
missing, unexpected and mis-shaped, never a silent partial load.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError

PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


def read_state_dict(source: str | os.PathLike, sha256: str | None = None) -> dict[str, Tensor]:
    """Tensors from a .safetensors file, a torch file (weights_only) or an https URL."""
    source = str(source)
    if source.startswith(("http://", "https://")):
        path = _download(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {source}")
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(sha256.lower()):
            raise ConfigError(f"{path}: sha256 {digest[:16]}... does not match {sha256[:16]}...")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated or pickled with code: one line, not a traceback
        raise ConfigError(
            f"cannot read weights from {path}: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    return unwrap_state_dict(state, str(path))


def unwrap_state_dict(state, where: str = "checkpoint") -> dict[str, Tensor]:
    """The tensor dict inside common checkpoint layouts, with wrapper prefixes removed."""
    for key in ("state_dict", "model", "model_state", "ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"{where} holds no state dict of tensors")
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _download(url: str) -> Path:
    cache = Path(os.environ.get("LIGHTNETS_CACHE", Path.home() / ".cache" / "lightnets"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / url.rsplit("/", 1)[-1].split("?")[0]
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        torch.hub.download_url_to_file(url, str(tmp), progress=True)
        tmp.replace(path)
    return path


def convert_timm_state_dict(name: str, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a timm state dict of model `name` (timm or lightnets name) to lightnets' layout."""
    from lightnets.models._timm import convert

    return convert(name, state_dict)


def _is_timm_layout(state: dict[str, Tensor]) -> bool:
    return "conv_stem.weight" in state or any(k.startswith("blocks.") for k in state)


def load_weights(
    model: nn.Module,
    source: str | os.PathLike | dict[str, Tensor],
    strict: bool = True,
    ignore_head: bool = False,
    sha256: str | None = None,
) -> nn.Module:
    """Load weights into `model` in place and return it.

    A timm-layout file is detected and converted. With `ignore_head=True` a classifier of another
    size is skipped (and stays freshly initialised) with a warning; any other mismatch raises a
    ValueError listing missing, unexpected and mis-shaped keys.
    """
    state = (
        unwrap_state_dict(source) if isinstance(source, dict) else read_state_dict(source, sha256)
    )
    if _is_timm_layout(state):
        name = getattr(model, "model_name", None)
        if name is None:
            raise ConfigError(
                "this is a timm checkpoint; build the model with create_model so the "
                "converter knows its architecture"
            )
        state = convert_timm_state_dict(name, state)
    own = model.state_dict()
    head = {k for k in own if k.startswith("classifier.")}
    if ignore_head:
        skipped = [k for k in head if k in state and state[k].shape != own[k].shape]
        if skipped or any(k not in state for k in head):
            warnings.warn(
                "classifier weights do not match; it keeps its fresh initialisation", stacklevel=2
            )
        state = {k: v for k, v in state.items() if k not in head}
        for k in head:
            state[k] = own[k]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if misshaped or (strict and (missing or unexpected)):
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped", misshaped),
            )
            if keys
        ]
        hint = (
            "; pass ignore_head=True to re-initialise the classifier"
            if all(k.startswith("classifier.") for k in [*missing, *unexpected, *misshaped])
            else ""
        )
        raise ConfigError(f"weights do not fit {type(model).__name__}: {'; '.join(parts)}{hint}")
    model.load_state_dict(state, strict=strict)
    return model
