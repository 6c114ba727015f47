"""Factorised convolutions: spatially separable (n x 1 then 1 x n, Inception-v3 arXiv:1512.00567)
and global depthwise convolution (GDC, MobileFaceNet arXiv:1804.07573)."""

from __future__ import annotations

from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.layers import _checks
from lightnets.layers._checks import is_tracing


class SpatiallySeparableConv2d(nn.Module):
    """k x 1 conv followed by 1 x k conv: 2k instead of k^2 weights per channel pair.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)); stride applies once per axis.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        _checks.positive("in_channels", in_channels)
        _checks.positive("out_channels", out_channels)
        k = _checks.odd_kernels("kernel_size", kernel_size)[0]
        _checks.stride(stride)
        _checks.divisible("in_channels", in_channels, groups)
        _checks.divisible("out_channels", out_channels, groups)
        self.vertical = nn.Conv2d(
            in_channels, out_channels, (k, 1), (stride, 1), (k // 2, 0), groups=groups, bias=False
        )
        self.horizontal = nn.Conv2d(
            out_channels, out_channels, (1, k), (1, stride), (0, k // 2), groups=groups, bias=bias
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.horizontal(self.vertical(x))


class GlobalDepthwiseConv2d(nn.Module):
    """Depthwise conv as large as the feature map (GDC), then BN: (N, C, H, W) -> (N, C).

    Unlike global average pooling it learns a weight per position, which matters for faces, whose
    centre carries more identity than the corners (MobileFaceNet §2.2).
    """

    def __init__(self, channels: int, feature_size: int | tuple[int, int] = 7):
        super().__init__()
        _checks.positive("channels", channels)
        size = (feature_size, feature_size) if isinstance(feature_size, int) else feature_size
        for s in size:
            _checks.positive("feature_size", s)
        self.feature_size = tuple(size)
        self.conv = nn.Conv2d(channels, channels, self.feature_size, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        if not is_tracing() and tuple(x.shape[-2:]) != self.feature_size:
            raise ConfigError(
                f"GlobalDepthwiseConv2d expects {self.feature_size} feature maps, got "
                f"{tuple(x.shape[-2:])}; the model's input size is fixed"
            )
        return self.bn(self.conv(x)).flatten(1)
