"""ShuffleNet building units.

- `ShuffleUnitV1`: "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
  Devices", Zhang et al., arXiv:1707.01083, Fig. 2(b) and 2(c).
- `ShuffleUnitV2`: "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
  Ma et al., arXiv:1807.11164, Fig. 3(c) and 3(d); layer for layer as torchvision's
  `InvertedResidual` (same parameter count), with our own child names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.layers import _checks
from lightnets.layers.conv import ConvNormAct
from lightnets.layers.shuffle import ChannelShuffle, channel_shuffle


class ShuffleUnitV1(nn.Module):
    """1x1 GConv -> BN -> ReLU -> shuffle -> 3x3 DWConv -> BN -> 1x1 GConv -> BN, then a shortcut
    and ReLU (arXiv:1707.01083 Fig. 2).

    Stride 1: the branch is added to the input. Stride 2: the input, 3x3 average pooled with
    stride 2, is concatenated with a branch of `C_out - C_in` channels, so the unit widens cheaply.
    There is no ReLU after the depthwise conv (§3.2: "we do not use ReLU after the depthwise conv").

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)).

    Args:
        groups: groups of both 1x1 convolutions.
        mid_channels: bottleneck width; the paper uses C_out / 4 (§3.2).
        group_first: False makes the first 1x1 dense; the paper does this in the first unit of
            stage 2, whose input has only 24 channels (§3.3).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 3,
        *,
        mid_channels: int | None = None,
        group_first: bool = True,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        _checks.positive("in_channels", in_channels)
        _checks.stride(stride)
        _checks.positive("groups", groups)
        if stride == 1 and out_channels != in_channels:
            raise ConfigError(
                f"a stride-1 ShuffleUnitV1 adds its input, so out_channels must equal "
                f"in_channels={in_channels}, got {out_channels}"
            )
        if stride == 2 and out_channels <= in_channels:
            raise ConfigError(
                f"a stride-2 ShuffleUnitV1 concatenates its input, so out_channels must exceed "
                f"in_channels={in_channels}, got {out_channels}"
            )
        mid = mid_channels or out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        self.stride = stride
        self.expand = ConvNormAct(
            in_channels, mid, groups=groups if group_first else 1, norm_layer=norm_layer
        )
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.dw = ConvNormAct(
            mid, mid, 3, stride, groups=mid, act_layer=None, norm_layer=norm_layer
        )
        self.project = ConvNormAct(
            mid, branch_out, groups=groups, act_layer=None, norm_layer=norm_layer
        )
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.dw(self.shuffle(self.expand(x))))
        if self.stride == 2:
            return self.act(torch.cat([self.shortcut(x), y], dim=1))
        return self.act(self.shortcut(x) + y)


class ShuffleUnitV2(nn.Module):
    """ShuffleNetV2 unit (arXiv:1807.11164 Fig. 3c/d), followed by a channel shuffle with 2 groups.

    Stride 1: channel split; half passes unchanged, the other half goes through
    1x1 -> BN -> ReLU -> 3x3 DW -> BN -> 1x1 -> BN -> ReLU; concat. Stride 2: no split; the whole
    input feeds the same branch and a shortcut 3x3 DW (stride 2) -> BN -> 1x1 -> BN -> ReLU; concat,
    doubling the channels in the usual case.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)); each side makes C_out / 2.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        _checks.positive("in_channels", in_channels)
        _checks.stride(stride)
        _checks.divisible("out_channels", out_channels, 2)
        if stride == 1 and out_channels != in_channels:
            raise ConfigError(
                f"a stride-1 ShuffleUnitV2 splits and re-joins its input, so out_channels must "
                f"equal in_channels={in_channels}, got {out_channels}"
            )
        half = out_channels // 2
        self.stride = stride
        if stride == 2:
            self.shortcut = nn.Sequential(
                ConvNormAct(
                    in_channels,
                    in_channels,
                    3,
                    2,
                    groups=in_channels,
                    act_layer=None,
                    norm_layer=norm_layer,
                ),
                ConvNormAct(in_channels, half, norm_layer=norm_layer),
            )
        else:
            self.shortcut = nn.Identity()
        self.branch = nn.Sequential(
            ConvNormAct(in_channels if stride == 2 else half, half, norm_layer=norm_layer),
            ConvNormAct(half, half, 3, stride, groups=half, act_layer=None, norm_layer=norm_layer),
            ConvNormAct(half, half, norm_layer=norm_layer),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 2:
            out = torch.cat([self.shortcut(x), self.branch(x)], dim=1)
        else:
            kept, processed = x.chunk(2, dim=1)
            out = torch.cat([self.shortcut(kept), self.branch(processed)], dim=1)
        return channel_shuffle(out, 2)
