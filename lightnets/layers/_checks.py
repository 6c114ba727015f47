"""Argument checks shared by the layers: one-line ValueErrors that name the argument and value."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.fx._symbolic_trace import is_fx_tracing


def positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def odd_kernels(name: str, kernels: int | Sequence[int]) -> tuple[int, ...]:
    """Kernels as a tuple of positive odd ints (even kernels have no centre, so 'same' is lopsided)."""
    kernels = (kernels,) if isinstance(kernels, int) else tuple(kernels)
    if not kernels:
        raise ValueError(f"{name} must name at least one kernel size, got {kernels!r}")
    for k in kernels:
        positive(name, k)
        if k % 2 == 0:
            raise ValueError(f"{name} must hold odd sizes, got {k} in {kernels}")
    return kernels


def stride(value: int) -> int:
    if value not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {value!r}")
    return value


def divisible(name: str, channels: int, groups: int) -> None:
    if channels % groups:
        raise ValueError(f"{name}={channels} is not divisible by groups={groups}")


def is_tracing() -> bool:
    """True under torch.fx, TorchScript or torch.compile/export, where Python shape checks can't run."""
    return is_fx_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
