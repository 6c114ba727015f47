"""Conv -> norm -> activation, and the channel rounding every mobile paper uses."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from lightnets.layers import _checks
from lightnets.layers.activations import make_act
from lightnets.layers.padding import conv2d


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `value` to the nearest multiple of `divisor`, never below 90% of it (MobileNetV2)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvNormAct(nn.Sequential):
    """conv -> norm -> act, with children named `conv`, `bn`, `act` (stable state-dict keys).

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)). Pass `conv` to wrap another
    convolution (a MixConv2d); `norm_layer=None` gives a biased conv and no norm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        *,
        groups: int = 1,
        dilation: int = 1,
        act_layer: type[nn.Module] | None = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        padding: str = "same",
        conv: nn.Module | None = None,
    ):
        super().__init__()
        _checks.positive("in_channels", in_channels)
        _checks.positive("out_channels", out_channels)
        if conv is None:
            _checks.odd_kernels("kernel_size", kernel_size)
            _checks.stride(stride)
            _checks.divisible("in_channels", in_channels, groups)
            _checks.divisible("out_channels", out_channels, groups)
            conv = conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                dilation,
                groups,
                bias=norm_layer is None,
                padding=padding,
            )
        self.conv = conv
        self.bn = norm_layer(out_channels) if norm_layer is not None else nn.Identity()
        self.act = make_act(act_layer, out_channels)
