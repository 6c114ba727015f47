"""Depthwise separable convolution (MobileNetV1, arXiv:1704.04861 §3.1): a depthwise kxk conv that
filters each channel, then a 1x1 conv that mixes them. With SE and a residual it is the first block
of MnasNet, EfficientNet and MixNet."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from lightnets._deprecation import renamed_kwargs
from lightnets.layers import _checks
from lightnets.layers.attention import SqueezeExcite
from lightnets.layers.conv import ConvNormAct
from lightnets.layers.drop import DropPath
from lightnets.layers.mixconv import MixConv2d


@renamed_kwargs(kernels="kernel_sizes")
class DepthwiseSeparableConv2d(nn.Module):
    """depthwise kxk -> BN -> act [-> SE] -> pointwise 1x1 -> BN [-> act] (+ skip if asked).

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)). `kernel_sizes` may mix sizes
    (MDConv). `pw_act=True` keeps the activation after the pointwise conv (MobileNetV1); the MBConv
    family leaves it linear. `residual=True` adds the input when stride is 1 and widths match.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        kernel_sizes: Sequence[int] = (3,),
        *,
        pw_act: bool = True,
        residual: bool = False,
        se_channels: int = 0,
        se_gate: str = "sigmoid",
        se_act: type[nn.Module] | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        padding: str = "same",
        drop_path: float = 0.0,
    ):
        super().__init__()
        _checks.positive("in_channels", in_channels)
        _checks.positive("out_channels", out_channels)
        self.use_skip = residual and stride == 1 and in_channels == out_channels
        self.dw = ConvNormAct(
            in_channels,
            in_channels,
            act_layer=act_layer,
            norm_layer=norm_layer,
            conv=MixConv2d(in_channels, in_channels, kernel_sizes, stride, padding=padding),
        )
        self.se = (
            SqueezeExcite(in_channels, se_channels, se_act or act_layer, se_gate)
            if se_channels
            else nn.Identity()
        )
        self.pw = ConvNormAct(
            in_channels,
            out_channels,
            act_layer=act_layer if pw_act else None,
            norm_layer=norm_layer,
            padding=padding,
        )
        self.drop_path = DropPath(drop_path) if self.use_skip and drop_path else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.pw(self.se(self.dw(x)))
        return x + self.drop_path(y) if self.use_skip else y
