"""Inverted residual / MBConv block: MobileNetV2 (arXiv:1801.04381) with the MnasNet/MobileNetV3 SE
and MixNet's mixed depthwise kernels and split (grouped) 1x1 convolutions (arXiv:1907.09595)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from lightnets._deprecation import renamed_kwargs
from lightnets.errors import ConfigError
from lightnets.layers import _checks
from lightnets.layers.attention import SqueezeExcite
from lightnets.layers.conv import ConvNormAct, make_divisible
from lightnets.layers.drop import DropPath
from lightnets.layers.mixconv import MixConv2d


def pointwise(in_channels: int, out_channels: int, groups: int, padding: str) -> nn.Module:
    """1x1 conv; with groups > 1 MixNet splits it into `groups` convs (remainder to the first)."""
    return MixConv2d(in_channels, out_channels, (1,) * groups, depthwise=False, padding=padding)


@renamed_kwargs(kernels="kernel_sizes")
class InvertedResidual(nn.Module):
    """expand 1x1 -> depthwise kxk (mixed kernels) -> SE -> linear project 1x1 (+ skip).

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)); the skip is used when
    stride == 1 and C_in == C_out.

    Args:
        expand_ratio: mid = make_divisible(C_in * expand_ratio), unless `mid_channels` is given.
        kernel_sizes: depthwise kernel size per channel group (MixConv); `(3,)`: plain depthwise.
        expand_groups, project_groups: split the 1x1 convs into groups (MixNet uses 2).
        se_channels: reduced width of the SE layer (0: no SE); papers compute it differently.
        se_gate, se_act: SE gate ("sigmoid" or "hard_sigmoid") and its inner activation.
        drop_path: stochastic-depth rate of the residual branch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 6.0,
        kernel_sizes: Sequence[int] = (3,),
        *,
        mid_channels: int | None = None,
        expand_groups: int = 1,
        project_groups: int = 1,
        se_channels: int = 0,
        se_gate: str = "sigmoid",
        se_act: type[nn.Module] | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        dilation: int = 1,
        padding: str = "same",
        drop_path: float = 0.0,
        skip: bool = True,
    ):
        super().__init__()
        _checks.positive("in_channels", in_channels)
        _checks.positive("out_channels", out_channels)
        if expand_ratio <= 0:
            raise ConfigError(f"expand_ratio must be positive, got {expand_ratio!r}")
        mid = mid_channels or make_divisible(in_channels * expand_ratio)
        self.use_skip = skip and stride == 1 and in_channels == out_channels
        self.expand = (
            ConvNormAct(
                in_channels,
                mid,
                act_layer=act_layer,
                norm_layer=norm_layer,
                conv=pointwise(in_channels, mid, expand_groups, padding),
            )
            if mid != in_channels
            else nn.Identity()
        )
        self.dw = ConvNormAct(
            mid,
            mid,
            act_layer=act_layer,
            norm_layer=norm_layer,
            conv=MixConv2d(mid, mid, kernel_sizes, stride, dilation, padding=padding),
        )
        self.se = (
            SqueezeExcite(mid, se_channels, se_act or act_layer, se_gate)
            if se_channels
            else nn.Identity()
        )
        self.project = ConvNormAct(
            mid,
            out_channels,
            act_layer=None,
            norm_layer=norm_layer,
            conv=pointwise(mid, out_channels, project_groups, padding),
        )
        self.drop_path = DropPath(drop_path) if self.use_skip and drop_path else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + self.drop_path(y) if self.use_skip else y
