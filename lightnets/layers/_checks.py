"""Argument checks shared by the layers: one-line ValueErrors that name the argument and value."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lightnets.errors import ConfigError

try:  # torch >= 2.6; the older name logs a warning on every call there
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing as is_fx_tracing
except ImportError:  # pragma: no cover
    from torch.fx._symbolic_trace import is_fx_tracing


def positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def odd_kernels(name: str, kernel_sizes: int | Sequence[int]) -> tuple[int, ...]:
    """Kernel sizes as a tuple of positive odd ints (an even kernel has no centre to pad around)."""
    sizes = (kernel_sizes,) if isinstance(kernel_sizes, int) else tuple(kernel_sizes)
    if not sizes:
        raise ConfigError(f"{name} must name at least one kernel size, got {kernel_sizes!r}")
    for k in sizes:
        positive(name, k)
        if k % 2 == 0:
            raise ConfigError(f"{name} must hold odd sizes, got {k} in {sizes}")
    return sizes


def stride(value: int) -> int:
    if value not in (1, 2):
        raise ConfigError(f"stride must be 1 or 2, got {value!r}")
    return value


def divisible(name: str, channels: int, groups: int) -> None:
    if channels % groups:
        raise ConfigError(f"{name}={channels} is not divisible by groups={groups}")


def is_tracing() -> bool:
    """True under torch.fx, TorchScript or torch.compile/export: no Python shape checks there."""
    return is_fx_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()


def input_4d(x: torch.Tensor, channels: int, layer: str) -> None:
    """ValueError for an input that is not (N, channels, H, W); skipped while tracing."""
    if is_tracing():
        return
    if x.ndim != 4 or x.shape[1] != channels:
        raise ConfigError(f"{layer} expects input (N, {channels}, H, W), got {tuple(x.shape)}")
