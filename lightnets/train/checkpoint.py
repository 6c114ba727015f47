"""Checkpoints that survive any interruption: atomic writes, safe loading, complete state.

A checkpoint is a directory `RUN/last` (or `RUN/best`) holding
  model.safetensors   weights without wrapper prefixes, with the config and class names in metadata
  ema.safetensors     EMA weights, when the run keeps an EMA
  state.pt            optimizer, scheduler, EMA, grad scaler, RNG states, epoch, step, metrics
state.pt holds only tensors and plain Python values, so it loads with torch.load(weights_only=True).
The names are lightnets.rundir's, where readers of a run dir find them too.

The directory is written under a temporary name (`.last.tmp`) and swapped in with two renames
(last -> .last.old, .last.tmp -> last). `.last.old` is deleted only while a complete `last`
exists, so whatever point a crash interrupts a save at, `find_checkpoint` finds a complete
checkpoint: `last`, else `.last.old`. Files and directories get the umask's mode.

`resume_checkpoint` reads the newest intact checkpoint of a run for `--resume`: a truncated or
corrupt `last/` falls back to `.last.old`, then `best/`, with a note saying so.
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

from lightnets.errors import CheckpointError, ConfigError
from lightnets.files import atomic_write
from lightnets.rundir import (  # noqa: F401  (find_checkpoint, RESUME_ORDER: re-exported)
    BEST,
    EMA_WEIGHTS,
    LAST,
    MODEL_WEIGHTS,
    RESUME_ORDER,
    STATE,
    find_checkpoint,
)

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
    # safetensors creates its files 0600; atomic_write gives them the umask's mode like the rest
    tensors = contiguous_state(unwrap(model))
    atomic_write(tmp / MODEL_WEIGHTS, lambda path: save_file(tensors, path, metadata))
    if ema is not None:
        ema_tensors = contiguous_state(ema)
        atomic_write(tmp / EMA_WEIGHTS, lambda path: save_file(ema_tensors, path, metadata))
    torch.save(state, tmp / STATE)
    with open(tmp / STATE, "rb") as fh:  # atomic_write synced the others
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
    """Rename the complete `tmp` to `final`; at every point `final` or `old` is complete."""
    _fsync_dir(tmp)
    if final.exists():  # `old` is an outdated copy (or a half-deleted one): drop it
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    # else a crash moved `final` away and `old` is the only complete checkpoint: keep it
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    """Make renames and new entries in `path` durable (a no-op where directories cannot be
    opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_state(ckpt_dir: Path) -> dict:
    """The training state of a checkpoint dir; CheckpointError naming the file if unreadable."""
    from lightnets.weights import torch_load_safely

    path = Path(ckpt_dir) / STATE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    state = torch_load_safely(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a lightnets training state")
    return state


def load_model_weights(ckpt_dir: Path, file: str = MODEL_WEIGHTS) -> dict[str, Tensor]:
    """The tensors of a checkpoint's weights file; CheckpointError naming it if unreadable."""
    from lightnets.weights import read_safetensors

    path = Path(ckpt_dir) / file
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return read_safetensors(path)[0]


def resume_checkpoint(run_dir: Path) -> tuple[Path, dict, dict, list[str]]:
    """(dir, state, model weights, notes) of the newest intact checkpoint of `run_dir`.

    `last/` normally; if it is truncated or corrupt, `.last.old` (left by a crash during a save),
    else `best/`, and `notes` says which file was skipped and why. CheckpointError if none of
    them loads, FileNotFoundError if the run has no checkpoint at all.
    """
    problems = []
    for name in RESUME_ORDER:
        candidate = Path(run_dir) / name
        if not candidate.is_dir():
            continue
        try:
            state = load_state(candidate)
            tensors = load_model_weights(candidate)  # the EMA resumes from state.pt
        except (CheckpointError, FileNotFoundError) as err:
            problems.append(str(err))
            continue
        notes = [
            f"{p}; resuming from {candidate} (epoch {state['epoch']}, step "
            f"{state['global_step']}) instead"
            for p in problems[:1]
        ]
        return candidate, state, tensors, notes + problems[1:]
    if not problems:
        raise FileNotFoundError(f"--resume {run_dir}: no checkpoint in last/")
    raise CheckpointError(
        f"{problems[0]}; no intact earlier checkpoint (.last.old, best/) to resume from"
    )


def checkpoint_metadata(
    config: dict, class_names: list[str], epoch: int, step: int, arch: dict | None = None
) -> dict:
    """safetensors metadata (strings); `arch`, a mixnet_custom's table, rebuilds it without
    its file."""
    meta = {
        "format": "lightnets",
        "config": json.dumps(config),
        "class_names": json.dumps(class_names),
        "epoch": str(epoch),
        "step": str(step),
    }
    if arch is not None:
        meta["arch"] = json.dumps(arch)
    return meta


def model_arch(model: nn.Module) -> dict | None:
    """The architecture table a model was built from (mixnet_custom), as a dict; else None."""
    arch = getattr(unwrap(model), "arch", None)
    return arch.to_dict() if arch is not None else None


# --- a training run's checkpoints (`run` is a lightnets.train.loop.Run)


def training_state(run) -> dict:
    """Everything besides the weights that a resume needs, as weights_only-loadable values."""
    p = run.progress
    return {
        "format": STATE_FORMAT,
        "epoch": p.epoch,
        "step_in_epoch": p.step_in_epoch,
        "global_step": p.global_step,
        "best_metric": p.best_metric,
        "best_epoch": p.best_epoch,
        "history": p.history,
        "running": p.running,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "scaler": run.scaler.state_dict(),
        "rng": rng_state(),
        "config": run.cfg.to_dict(),
        "class_names": run.class_names,
    }


def save_run(run, best: bool) -> None:
    """Rank 0 writes RUN/last (and copies it to RUN/best); other ranks do nothing."""
    if not run.dist.is_main:
        return
    p = run.progress
    meta = checkpoint_metadata(
        run.cfg.to_dict(), run.class_names, p.epoch, p.global_step, model_arch(run.model)
    )
    ema = run.ema.module if run.ema is not None else None
    save_checkpoint(run.run_dir, LAST, run.model, ema, training_state(run), meta)
    if best:
        copy_checkpoint(run.run_dir, LAST, BEST)


def restore(run, state: dict, tensors: dict[str, Tensor]) -> None:
    """Load a checkpoint's weights and state (from `resume_checkpoint`) into a freshly built run."""
    if state["class_names"] != run.class_names:
        raise ConfigError(
            f"--resume: the checkpoint has {len(state['class_names'])} classes "
            f"{state['class_names'][:5]}..., the data {len(run.class_names)}"
        )
    unwrap(run.model).load_state_dict(tensors)
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    p = run.progress
    p.epoch, p.step_in_epoch = state["epoch"], state["step_in_epoch"]
    p.global_step = state["global_step"]
    p.best_metric, p.best_epoch = state["best_metric"], state["best_epoch"]
    p.history, p.running = list(state["history"]), dict(state["running"])
    set_rng_state(state["rng"])  # last: building the run drew random numbers
