"""VGNet's blocks, from "Efficient CNN Architecture Design Guided by Visualization" (Zhang et al.,
ICME 2022), arXiv:2207.10318, as built by the official code (github.com/ffiirree/cv-models).

- `DownsamplingBlock`: a stride-2 depthwise filter (fixed Gaussian blur, learned depthwise conv or
  max-pool), then the downsampled input channels are *reused* as the left part of the output and
  a 1x1 conv computes only the missing channels (guideline: reuse feature maps, do not recompute).
- `HalfIdentityBlock`: the left half of the channels goes straight into a 1x1 conv, the right half
  through a 3x3 depthwise conv (learned, or fixed edge/Gaussian kernels for VGNetF) into the same
  1x1 conv; the untouched right half of the input becomes the left half of the output.
- `SharedDepthwiseConv2d`: one depthwise kernel set of C/t channels applied to each of t channel
  groups (the last block of the paper-era VGNets).

Blocks take and return one tensor. The official code passes (left, right) pairs between blocks to
save a concatenation; the computation is the same, only the memory traffic differs.

Norm *after* activation (conv -> act -> BN), as the official VGNet code builds its conv blocks; the
depthwise convs have no norm or activation of their own (a BN follows only the fixed kernels).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightnets._deprecation import renamed_kwargs
from lightnets.errors import ConfigError
from lightnets.layers import _checks
from lightnets.layers.activations import make_act
from lightnets.layers.attention import SqueezeExcite
from lightnets.layers.conv import make_divisible
from lightnets.layers.fixed import FixedDepthwiseConv2d

DOWNSAMPLING = ("blur", "dwconv", "maxpool")
# sigma of the official fixed 3x3 Gaussian: its hard-coded taps 0.0811/0.1226/0.1853 are sigma=1.1
BLUR_SIGMA = 1.1


def conv_act_norm(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    stride: int = 1,
    act_layer: type[nn.Module] | None = nn.ReLU,
    norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
) -> nn.Sequential:
    """conv -> act -> norm (VGNet's order), children `conv`, `act`, `bn`; no conv bias."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
    return nn.Sequential(
        OrderedDict(conv=conv, act=make_act(act_layer, out_channels), bn=norm_layer(out_channels))
    )


def se_channels(channels: int, se_ratio: float) -> int:
    """SE width of the official code: int(channels * ratio) rounded to a multiple of 8."""
    return make_divisible(int(channels * se_ratio), 8)


def _pointwise(in_channels, out_channels, se_ratio, act_layer, norm_layer) -> nn.Sequential:
    """1x1 conv -> act -> BN [-> SE on its output, with the block's activation inside]."""
    pw = conv_act_norm(in_channels, out_channels, 1, 1, act_layer, norm_layer)
    if se_ratio > 0:
        rd = se_channels(out_channels, se_ratio)
        pw.add_module("se", SqueezeExcite(out_channels, rd, act_layer or nn.ReLU))
    return pw


class SharedDepthwiseConv2d(nn.Module):
    """Depthwise kxk conv whose C/t kernels are shared by t consecutive channel groups.

    (N, C, H, W) -> (N, C, H, W). Channel i uses kernel i mod C/t, i.e. the same result as chunking
    the input into t groups and running one depthwise conv of C/t channels on each.
    """

    def __init__(self, channels: int, groups: int = 8, kernel_size: int = 3):
        super().__init__()
        _checks.positive("channels", channels)
        _checks.positive("groups", groups)
        _checks.odd_kernels("kernel_size", kernel_size)
        _checks.divisible("channels", channels, groups)
        self.channels, self.groups = channels, groups
        self.weight = nn.Parameter(torch.empty(channels // groups, 1, kernel_size, kernel_size))
        # He-normal over the depthwise fan-out k*k, as init_weights does for depthwise convs
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / kernel_size**2))

    def forward(self, x: Tensor) -> Tensor:
        # one grouped conv over all C channels with the kernels tiled t times
        weight = self.weight.repeat(self.groups, 1, 1, 1)
        return F.conv2d(x, weight, padding=self.weight.shape[-1] // 2, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, shared_by={self.groups}, kernel_size={self.weight.shape[-1]}"


class DownsamplingBlock(nn.Module):
    """Downsample, reuse the downsampled input channels, compute the rest with a 1x1 conv.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)). With d = the downsampled input,
    the output is concat(d[:, C_in - r:], pw(d)) where r = min(C_out // 2, C_in) channels are reused
    (none if C_in > C_out) and pw: C_in -> C_out - r is 1x1 conv -> act -> BN [-> SE].

    Args:
        method: "blur" (fixed Gaussian, sigma 1.1), "dwconv" (learned 3x3 depthwise) or "maxpool"
            (3x3). At stride 1 the official code always uses the learned depthwise conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 2,
        method: str = "blur",
        *,
        se_ratio: float = 0.0,
        act_layer: type[nn.Module] | None = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        _checks.positive("in_channels", in_channels)
        _checks.positive("out_channels", out_channels)
        _checks.stride(stride)
        if method not in DOWNSAMPLING:
            raise ConfigError(f"method must be one of {DOWNSAMPLING}, got {method!r}")
        if method == "dwconv" or stride == 1:
            self.downsample = nn.Conv2d(
                in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False
            )
        elif method == "blur":
            self.downsample = FixedDepthwiseConv2d(in_channels, "gaussian", 3, stride, BLUR_SIGMA)
        else:
            # padding 1 keeps ceil(H/2) like the other methods (the official pool has none)
            self.downsample = nn.MaxPool2d(3, stride, padding=1)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.reused = 0 if in_channels > out_channels else min(out_channels // 2, in_channels)
        self.pw = _pointwise(
            in_channels, out_channels - self.reused, se_ratio, act_layer, norm_layer
        )

    def forward(self, x: Tensor) -> Tensor:
        _checks.input_4d(x, self.in_channels, type(self).__name__)
        x = self.downsample(x)
        if self.reused == 0:
            return self.pw(x)
        return torch.cat([x[:, self.in_channels - self.reused :], self.pw(x)], dim=1)

    def extra_repr(self) -> str:
        return f"reused={self.reused}"


@renamed_kwargs(kernels="bank")
class HalfIdentityBlock(nn.Module):
    """Half of the channels pass through; the other half is mixed by depthwise + pointwise convs.

    (N, C, H, W) -> (N, C, H, W), C even. With x = concat(a, b) (halves):
        output = concat(b, pw(concat(a, dw(b))))
    so the right half b of the input is, unchanged, the left half of the output. pw: C -> C/2 is
    1x1 conv -> act -> BN [-> SE].

    Args:
        bank: "learned" for a trainable 3x3 depthwise conv (no norm, as the official code), or
            the names of fixed kernels tiled over the C/2 channels (VGNetF, see
            lightnets.layers.FixedDepthwiseConv2d), which are followed by a BN.
        sigma: sigma of any "gaussian" among the fixed kernels.
    """

    def __init__(
        self,
        channels: int,
        bank: str | Sequence[str] = "learned",
        *,
        se_ratio: float = 0.0,
        sigma: float = 1.0,
        act_layer: type[nn.Module] | None = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        _checks.positive("channels", channels)
        if channels % 2:
            raise ConfigError(f"channels must be even to split in halves, got {channels}")
        self.channels, half = channels, channels // 2
        if bank == "learned":
            self.dw = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False)
        else:
            self.dw = nn.Sequential(
                OrderedDict(
                    conv=FixedDepthwiseConv2d(half, bank, 3, sigma=sigma), bn=norm_layer(half)
                )
            )
        self.pw = _pointwise(channels, half, se_ratio, act_layer, norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        _checks.input_4d(x, self.channels, type(self).__name__)
        left, right = x.chunk(2, dim=1)
        return torch.cat([right, self.pw(torch.cat([left, self.dw(right)], dim=1))], dim=1)
