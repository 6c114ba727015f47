"""TorchScript export: torch.jit.trace, saved, reloaded and checked against the eager model.

`export` and `load` are this module's deployment target (lightnets.deploy.targets, fp32 only).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from lightnets.errors import ConfigError


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    in_chans: int,
    size: int,
    reference: nn.Module | None = None,
    rtol: float = 1e-4,
) -> float:
    """Trace `model` to `path`, reload it and check it against `reference` at batches 1 and 3
    (the batch axis stays free); returns the largest relative error."""
    from lightnets.deploy.onnx import relative_error

    reference = reference if reference is not None else model
    with torch.no_grad(), warnings.catch_warnings():
        # shape checks and TF padding become constants: right for this input size, which is
        # fixed in the file anyway; the batch axis stays free and is checked below
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, torch.randn(2, in_chans, size, size), check_trace=False)
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path))
    error = 0.0
    for batch in (1, 3):
        x = torch.randn(batch, in_chans, size, size)
        with torch.no_grad():
            error = max(error, relative_error(loaded(x), reference(x)))
    if error > rtol:
        raise ConfigError(f"TorchScript output differs: relative error {error:.2e} > {rtol:.0e}")
    return error


def export(model: nn.Module, path: Path, example, precision: str, calibration, metadata) -> Path:
    """Trace `model` on `example` and save it at `path` (fp32 only; metadata in the sidecar)."""
    if precision != "fp32":
        raise ConfigError(f"torchscript exports fp32 only, not {precision!r}")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
    torch.jit.save(traced, str(path))
    return Path(path)


def load(path: Path, threads: int | None = None):
    """The saved module as a function: NCHW float32 array -> logits (numpy)."""
    module = torch.jit.load(str(path)).eval()
    if threads:
        torch.set_num_threads(threads)

    def run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return run
