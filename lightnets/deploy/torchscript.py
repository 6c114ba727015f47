"""TorchScript export: torch.jit.trace at the example's size (the batch axis stays free), fp32.

The deployment target's exporter (lightnets.deploy.targets); lightnets.deploy.artifacts checks the
file like every other artifact and lightnets.deploy.loaders runs it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from lightnets.errors import ConfigError


def export(model: nn.Module, path: Path, example, precision: str, calibration, metadata) -> Path:
    """Trace `model` on `example` and save it at `path` (fp32 only; metadata in the sidecar)."""
    if precision != "fp32":
        raise ConfigError(f"torchscript exports fp32 only, not {precision!r}")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
    torch.jit.save(traced, str(path))
    return Path(path)
