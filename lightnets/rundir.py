"""The layout of a `lightnets train` run directory: every file name, once.

    RUN/config.json, config.toml   the resolved TrainConfig (absolute paths), JSON and TOML
    RUN/classes.json               the class names, in label order
    RUN/arch.toml                  mixnet_custom's architecture table as trained
    RUN/metrics.json, metrics.csv  one row per epoch
    RUN/curves.png                 loss and accuracy per epoch
    RUN/confusion.png              `lightnets eval` on the run's own data
    RUN/tensorboard/               with --tensorboard
    RUN/last/, RUN/best/           checkpoints: model.safetensors, ema.safetensors, state.pt

A checkpoint is swapped in through `.last.tmp` and `.last.old` (lightnets.train.checkpoint), so
`find_checkpoint` accepts the complete previous copy when a swap was interrupted. Training writes
these files; checkpoints, evaluation and compare read them from here. Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG = "config.json"
CONFIG_TOML = "config.toml"
CLASSES = "classes.json"
ARCH = "arch.toml"
METRICS = "metrics.json"
METRICS_CSV = "metrics.csv"
CURVES = "curves.png"
CONFUSION = "confusion.png"
TENSORBOARD = "tensorboard"

LAST, BEST = "last", "best"  # checkpoint directories: the newest, and the best by val accuracy
MODEL_WEIGHTS = "model.safetensors"  # weights, with the config and class names in metadata
EMA_WEIGHTS = "ema.safetensors"  # the EMA's weights, when the run keeps an EMA
STATE = "state.pt"  # optimizer, scheduler, RNG states, epoch, history: what a resume needs
# where a resume looks, in order: a crash during a save leaves the previous copy as .<tag>.old
RESUME_ORDER = (LAST, f".{LAST}.old", BEST, f".{BEST}.old")


def find_checkpoint(run_dir: str | os.PathLike, tag: str = LAST) -> Path | None:
    """RUN/<tag>, or the complete previous copy if a swap was interrupted; None if neither."""
    for candidate in (Path(run_dir) / tag, Path(run_dir) / f".{tag}.old"):
        if (candidate / STATE).is_file() and (candidate / MODEL_WEIGHTS).is_file():
            return candidate
    return None


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """A run dir with its config and a checkpoint that a resume can start from."""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG).is_file() and any(
        (run_dir / d / STATE).is_file() for d in RESUME_ORDER[:3]
    )


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """A checkpoint directory (best/, last/ or a copy of one), not a run dir."""
    return (Path(path) / MODEL_WEIGHTS).is_file()


def run_of(path: str | os.PathLike) -> Path | None:
    """The run dir `path` (a run dir, or its best/ or last/) belongs to; None for anything else."""
    path = Path(path)
    if path.name in (LAST, BEST) and (path.parent / CONFIG).is_file():
        return path.parent
    return path if (path / CONFIG).is_file() else None
