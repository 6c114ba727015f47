"""Xception's separable convolution and residual block, from "Xception: Deep Learning with
Depthwise Separable Convolutions", Chollet, arXiv:1610.02357, Fig. 5.

Laid out as timm's `legacy_xception` (same parameters, same order of operations): the block's
first ReLU comes before its first separable conv, and its stride comes from a 3x3 max pool.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import Tensor, nn

from lightnets.layers import _checks
from lightnets.layers.conv import ConvNormAct


class SeparableConv2d(nn.Sequential):
    """Depthwise kxk then pointwise 1x1, with nothing in between: §4.7 of the paper finds that an
    intermediate activation hurts. (N, C_in, H, W) -> (N, C_out, H, W); children `dw`, `pw`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        _checks.positive("in_channels", in_channels)
        _checks.positive("out_channels", out_channels)
        k = _checks.odd_kernels("kernel_size", kernel_size)[0]
        super().__init__(
            OrderedDict(
                dw=nn.Conv2d(
                    in_channels, in_channels, k, padding=k // 2, groups=in_channels, bias=False
                ),
                pw=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            )
        )


class XceptionBlock(nn.Module):
    """[ReLU -> SeparableConv 3x3 -> BN] x reps (-> 3x3 max pool, stride 2) + shortcut.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)). The shortcut is the identity
    when shape is kept, else a strided 1x1 conv + BN (the paper's Fig. 5 residual connections).

    Args:
        reps: separable convs in the block (2 in the entry/exit flow, 3 in the middle flow).
        start_with_relu: False for the first entry-flow block, which follows a ReLU already.
        grow_first: widen in the first separable conv (True) or in the last (the exit block).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        reps: int,
        stride: int = 1,
        *,
        start_with_relu: bool = True,
        grow_first: bool = True,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        _checks.positive("reps", reps)
        _checks.stride(stride)
        if grow_first:
            widths = [in_channels] + [out_channels] * reps
        else:
            widths = [in_channels] * reps + [out_channels]
        convs = []
        for i in range(reps):
            # the first ReLU must not run in place: the shortcut still reads the block input
            act = nn.ReLU(inplace=i > 0) if i > 0 or start_with_relu else nn.Identity()
            convs.append(
                nn.Sequential(
                    OrderedDict(
                        act=act,
                        conv=SeparableConv2d(widths[i], widths[i + 1]),
                        bn=norm_layer(widths[i + 1]),
                    )
                )
            )
        self.convs = nn.Sequential(*convs)
        self.pool = nn.MaxPool2d(3, stride, 1) if stride > 1 else nn.Identity()
        self.shortcut = (
            ConvNormAct(in_channels, out_channels, 1, stride, act_layer=None, norm_layer=norm_layer)
            if stride > 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.convs(x)) + self.shortcut(x)
