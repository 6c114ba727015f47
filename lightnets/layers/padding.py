"""TensorFlow 'SAME' padding, which TF-trained weights (tf_mixnet_*) need to run exactly.

For stride 2, TF pads the bottom/right one more than the top/left when the total is odd; PyTorch's
symmetric padding shifts the sampling grid by a pixel. The pad depends only on the input size, so it
is computed from `x.shape` in forward: static for a given size, traceable by fx and torch.export.
"""

from __future__ import annotations

import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from lightnets.errors import ConfigError


def tf_same_pad_amount(size, kernel: int, stride: int, dilation: int):
    """Total padding TF adds along one axis of length `size` (works on ints and traced sizes)."""
    out = (size + stride - 1) // stride
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def pad_tf_same(x: Tensor, kernel: int, stride: int, dilation: int = 1) -> Tensor:
    pad_h = tf_same_pad_amount(x.shape[-2], kernel, stride, dilation)
    pad_w = tf_same_pad_amount(x.shape[-1], kernel, stride, dilation)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


torch.fx.wrap("pad_tf_same")  # fx records one call instead of tracing size arithmetic


class TfSameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow's asymmetric SAME padding; same weights and state-dict keys."""

    def forward(self, x: Tensor) -> Tensor:
        x = pad_tf_same(x, self.kernel_size[0], self.stride[0], self.dilation[0])
        return self._conv_forward(x, self.weight, self.bias)


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: str = "same",
) -> nn.Conv2d:
    """A Conv2d whose output is ceil(input / stride), padded the PyTorch way or TF's way."""
    if padding not in ("same", "tf_same"):
        raise ConfigError(f"padding must be 'same' or 'tf_same', got {padding!r}")
    if padding == "tf_same" and stride > 1:
        return TfSameConv2d(
            in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias
        )
    pad = dilation * (kernel_size - 1) // 2  # stride 1 TF SAME is symmetric for odd kernels
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, dilation, groups, bias)
