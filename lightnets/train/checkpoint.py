"""Checkpoints that survive any interruption: atomic writes, safe loading, complete state.

A checkpoint is a directory `RUN/last` (or `RUN/best`) holding
  model.safetensors   weights without wrapper prefixes, with the config and class names in metadata
  ema.safetensors     EMA weights, when the run keeps an EMA
  state.pt            optimizer, scheduler, EMA, grad scaler, RNG states, epoch, step, metrics
state.pt holds only tensors and plain Python values, so it loads with torch.load(weights_only=True).

The directory is written under a temporary name and swapped in with two renames; if a kill lands
between them, `find_checkpoint` picks up the complete previous directory (`.last.old`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.files import atomic_write, write_text  # noqa: F401  (re-exported for callers)

STATE_FORMAT = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def contiguous_state(module: nn.Module) -> dict[str, Tensor]:
    """state_dict as contiguous CPU tensors (safetensors needs them; channels_last is not)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def rng_state() -> dict:
    """Every RNG a training step can touch, as tensors and plain values."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def save_checkpoint(
    run_dir: Path,
    tag: str,
    model: nn.Module,
    ema: nn.Module | None,
    state: dict,
    metadata: dict[str, str],
) -> Path:
    """Write RUN/<tag>/ atomically and return its path."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    final, tmp, old = run_dir / tag, run_dir / f".{tag}.tmp", run_dir / f".{tag}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(contiguous_state(unwrap(model)), str(tmp / "model.safetensors"), metadata)
    if ema is not None:
        save_file(contiguous_state(ema), str(tmp / "ema.safetensors"), metadata)
    torch.save(state, tmp / "state.pt")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _swap(tmp, final, old)
    return final


def copy_checkpoint(run_dir: Path, src: str, dst: str) -> Path:
    """RUN/<src> copied to RUN/<dst> with the same atomic swap (used for `best`)."""
    run_dir = Path(run_dir)
    tmp, old = run_dir / f".{dst}.tmp", run_dir / f".{dst}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run_dir / src, tmp)
    _swap(tmp, run_dir / dst, old)
    return run_dir / dst


def _swap(tmp: Path, final: Path, old: Path) -> None:
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(run_dir: Path, tag: str = "last") -> Path | None:
    """RUN/<tag>, or the complete previous copy if a swap was interrupted; None if neither."""
    for candidate in (Path(run_dir) / tag, Path(run_dir) / f".{tag}.old"):
        if (candidate / "state.pt").is_file() and (candidate / "model.safetensors").is_file():
            return candidate
    return None


def load_state(ckpt_dir: Path) -> dict:
    state = torch.load(Path(ckpt_dir) / "state.pt", map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ConfigError(f"{ckpt_dir}/state.pt is not a lightnets training state")
    return state


def read_weights(path: str | os.PathLike, prefer_ema: bool = True):
    """(state_dict, metadata) from a .safetensors file, a checkpoint dir or a run dir.

    A run dir resolves to best/ (else last/); a checkpoint dir to its EMA weights when present
    and `prefer_ema`, else model.safetensors.
    """
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        for tag in ("best", "last"):
            found = find_checkpoint(path, tag)
            if found is not None:
                path = found
                break
        ema, plain = path / "ema.safetensors", path / "model.safetensors"
        path = ema if prefer_ema and ema.is_file() else plain
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint: no weights at {path}")
    if path.suffix != ".safetensors":
        from lightnets.weights import read_state_dict

        return read_state_dict(path), {}
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, metadata


def checkpoint_metadata(config: dict, class_names: list[str], epoch: int, step: int) -> dict:
    return {
        "format": "lightnets",
        "config": json.dumps(config),
        "class_names": json.dumps(class_names),
        "epoch": str(epoch),
        "step": str(step),
    }
