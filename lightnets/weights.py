"""Safe weight loading: safetensors or torch files with weights_only=True; timm layouts converted.

Nothing is downloaded unless the user passes an https URL. Mismatches are errors that list what is
missing, unexpected and mis-shaped, never a silent partial load.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets.errors import CheckpointError, ConfigError

PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


def read_state_dict(source: str | os.PathLike, sha256: str | None = None) -> dict[str, Tensor]:
    """Tensors from a .safetensors file, a torch file (weights_only) or an https URL."""
    return read_weights_file(source, sha256)[0]


def read_weights_file(
    source: str | os.PathLike, sha256: str | None = None
) -> tuple[dict[str, Tensor], dict]:
    """(state dict, metadata) of one weights file or URL. Metadata is the safetensors header's
    string map, or for a torch file the plain values stored beside the tensors ("config" ...)."""
    raw, where = _read_with_where(source, sha256)
    metadata = {}
    if isinstance(raw, tuple):  # safetensors: (tensors, header metadata)
        raw, metadata = raw
    elif isinstance(raw, dict):
        metadata = {k: v for k, v in raw.items() if not isinstance(v, (Tensor, dict))}
        if isinstance(raw.get("config"), dict):
            metadata["config"] = raw["config"]
    return unwrap_state_dict(raw, where), metadata


def _read_with_where(source, sha256):
    source = str(source)
    if source.startswith(("http://", "https://")):
        path = _download(source)
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"weights file not found: {source}")
        if not path.is_file():
            raise CheckpointError(f"{source}: not a weights file")
    if sha256 is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(sha256.lower()):
            raise CheckpointError(
                f"{path}: sha256 {digest[:16]}... does not match {sha256[:16]}..."
            )
    if path.suffix == ".safetensors" or _is_safetensors(path):
        return read_safetensors(path), str(path)
    return torch_load_safely(path), str(path)


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length, then a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except SafetensorError as err:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({err})") from None


def torch_load_safely(path: Path):
    """torch.load with weights_only=True and an error that never suggests unpickling the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol chatter from the safe unpickler
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message advises weights_only=False (arbitrary code execution): keep only why
        reason = str(err).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: not a file of tensors that loads safely ({reason}); it is corrupt, or it "
            f"holds pickled objects or code, which lightnets never loads"
        ) from None
    except Exception as err:  # noqa: BLE001  a garbled file fails anywhere in the unpickler
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: corrupt or truncated torch file ({first})") from None


def unwrap_state_dict(state, where: str = "checkpoint") -> dict[str, Tensor]:
    """The tensor dict inside common checkpoint layouts, with wrapper prefixes removed."""
    for key in ("state_dict", "model", "model_state", "ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{where} holds no state dict of tensors")
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _download(url: str) -> Path:
    """The file at `url`, downloaded once into the cache; the cache key includes a hash of the
    whole URL, so two URLs ending in the same file name never share an entry."""
    import urllib.error
    import urllib.parse

    cache = Path(os.environ.get("LIGHTNETS_CACHE", Path.home() / ".cache" / "lightnets"))
    name = Path(urllib.parse.urlparse(url).path).name or "weights"
    path = cache / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=True)
    except (urllib.error.URLError, OSError, ValueError) as err:
        tmp.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise CheckpointError(f"cannot download {url}: {reason}") from None
    tmp.replace(path)
    return path


def convert_timm_state_dict(name: str, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a timm state dict of model `name` (timm or lightnets name) to lightnets' layout."""
    from lightnets.models._timm import convert

    return convert(name, state_dict)


def is_timm_layout(state: dict[str, Tensor]) -> bool:
    """True for a state dict in timm's key layout (converted by `convert_timm_state_dict`)."""
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
    if is_timm_layout(state):
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
