"""Depthwise convolutions with fixed (non-trainable) kernels, from "Efficient CNN Architecture
Design Guided by Visualization" (VGNet), arXiv:2207.10318: Gaussian blurs for strided depthwise
layers and edge detectors (Sobel, Laplacian) where trained networks learn edge-like kernels.

Kernels are buffers, never frozen Parameters: they are saved in the state dict, moved by `.to()`,
exported to ONNX, and stay out of optimizers and parameter counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightnets._deprecation import renamed_kwargs
from lightnets.errors import ConfigError
from lightnets.layers import _checks


def gaussian_kernel(size: int, sigma: float) -> Tensor:
    """A (size, size) Gaussian that sums to 1."""
    _checks.odd_kernels("size", size)
    if sigma <= 0:
        raise ConfigError(f"sigma must be positive, got {sigma!r}")
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


def _centered(small: list[list[float]], size: int) -> Tensor:
    """Place a 3x3 stencil at the centre of a (size, size) zero kernel."""
    _checks.odd_kernels("size", size)
    if size < 3:
        raise ConfigError(f"edge kernels need size >= 3, got {size}")
    k = torch.zeros(size, size)
    c = size // 2
    k[c - 1 : c + 2, c - 1 : c + 2] = torch.tensor(small)
    return k


# 3x3 stencils; Sobel x responds to a left-to-right increase (cross-correlation, as F.conv2d does)
STENCILS = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "laplacian4": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "laplacian8": [[1, 1, 1], [1, -8, 1], [1, 1, 1]],
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    # Roberts cross, anchored at the centre pixel (VGNetF's edge bank)
    "roberts_x": [[0, 0, 0], [0, 1, 0], [0, 0, -1]],
    "roberts_y": [[0, 0, 0], [0, 0, 1], [0, -1, 0]],
}
KINDS = (*STENCILS, "laplacian", "gaussian", "box")


def fixed_kernel(kind: str, size: int = 3, sigma: float = 1.0) -> Tensor:
    """One (size, size) kernel by name: gaussian, box, sobel_x/y, laplacian4/8, roberts_x/y, ..."""
    if kind == "gaussian":
        return gaussian_kernel(size, sigma)
    if kind == "box":
        _checks.odd_kernels("size", size)
        return torch.full((size, size), 1.0 / size**2)
    if kind == "laplacian":
        kind = "laplacian4"
    if kind not in STENCILS:
        raise ConfigError(f"unknown fixed kernel {kind!r}; known: {', '.join(KINDS)}")
    if kind == "identity":
        _checks.odd_kernels("size", size)
        k = torch.zeros(size, size)
        k[size // 2, size // 2] = 1.0
        return k
    return _centered(STENCILS[kind], size)


@renamed_kwargs(kernels="bank")
class FixedDepthwiseConv2d(nn.Module):
    """Depthwise conv with fixed kernels stored as a buffer (VGNet, arXiv:2207.10318 §3).

    (N, C, H, W) -> (N, C, ceil(H/stride), ceil(W/stride)). `bank` names one kind for every
    channel, or several kinds tiled over the channels (VGNetF: channel i gets bank[i % len]).
    For "gaussian", `sigma` is one value or a (low, high) range spread linearly over the channels.
    """

    def __init__(
        self,
        channels: int,
        bank: str | Sequence[str] = "gaussian",
        kernel_size: int = 3,
        stride: int = 1,
        sigma: float | tuple[float, float] = 1.0,
    ):
        super().__init__()
        _checks.positive("channels", channels)
        _checks.odd_kernels("kernel_size", kernel_size)
        _checks.stride(stride)
        bank = (bank,) if isinstance(bank, str) else tuple(bank)
        low, high = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
        sigmas = torch.linspace(low, high, channels).tolist()
        weight = torch.stack(
            [fixed_kernel(bank[i % len(bank)], kernel_size, sigmas[i]) for i in range(channels)]
        )
        self.channels, self.stride, self.padding = channels, stride, kernel_size // 2
        self.kinds, self.sigma = bank, (low, high)
        self.register_buffer("weight", weight.unsqueeze(1))  # (C, 1, k, k)

    def forward(self, x: Tensor) -> Tensor:
        _checks.input_4d(x, self.channels, "FixedDepthwiseConv2d")
        return F.conv2d(
            x, self.weight, stride=self.stride, padding=self.padding, groups=self.channels
        )

    def extra_repr(self) -> str:
        sigma = f", sigma={self.sigma}" if "gaussian" in self.kinds else ""
        k = self.weight.shape[-1]
        return f"{self.channels}, kinds={self.kinds}, kernel_size={k}, stride={self.stride}{sigma}"
