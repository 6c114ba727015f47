"""Mixed depthwise convolution (MDConv) from "MixConv: Mixed Depthwise Convolutional Kernels",
Tan & Le, BMVC 2019, arXiv:1907.09595.

Channels are split into groups, each group is convolved with its own kernel size, and the outputs
are concatenated. The equal split gives the remainder to the first group, as the official TF
code does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightnets.layers import _checks
from lightnets.layers.padding import conv2d

SPLITS = ("equal", "exponential")


def split_channels(channels: int, groups: int, split: str = "equal") -> list[int]:
    """Channels per group. 'equal': C // g each, remainder to the first group.
    'exponential': group i gets about C / 2^(i+1), the last group the rest (MixConv §3 ablation)."""
    _checks.positive("channels", channels)
    _checks.positive("groups", groups)
    if split == "equal":
        sizes = [channels // groups] * groups
        sizes[0] += channels - sum(sizes)
    elif split == "exponential":
        sizes = [channels // 2 ** (i + 1) for i in range(groups - 1)]
        sizes.append(channels - sum(sizes))
    else:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if min(sizes) < 1:
        raise ValueError(
            f"cannot split {channels} channels into {groups} groups ({split} split gives {sizes})"
        )
    return sizes


class MixConv2d(nn.Module):
    """Mixed depthwise (or per-group regular) convolution, MixConv arXiv:1907.09595 §3.

    (N, C_in, H, W) -> (N, C_out, ceil(H/stride), ceil(W/stride)). Group i uses `kernel_size[i]` and
    `dilation[i]`; with depthwise=True each group is a depthwise conv (C_out must equal C_in).
    A single kernel size builds exactly one convolution and no split/concat.

    Args:
        kernel_size: odd kernel sizes, one per channel group (an int means one group).
        dilation: one int for all groups or one per group.
        split: "equal" or "exponential" channel partition.
        padding: "same" (symmetric) or "tf_same" (TensorFlow's asymmetric SAME for stride 2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = (3, 5, 7),
        stride: int = 1,
        dilation: int | Sequence[int] = 1,
        split: str = "equal",
        depthwise: bool = True,
        padding: str = "same",
        bias: bool = False,
    ):
        super().__init__()
        kernels = _checks.odd_kernels("kernel_size", kernel_size)
        dilations = (dilation,) * len(kernels) if isinstance(dilation, int) else tuple(dilation)
        if len(dilations) != len(kernels):
            raise ValueError(f"dilation {dilation!r} must be one int or one per kernel {kernels}")
        for d in dilations:
            _checks.positive("dilation", d)
        _checks.stride(stride)
        if depthwise and out_channels != in_channels:
            raise ValueError(
                f"depthwise MixConv2d needs out_channels == in_channels, got {out_channels} != "
                f"{in_channels}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation, self.stride = kernels, dilations, stride
        self.split, self.depthwise, self.padding = split, depthwise, padding
        self.in_splits = split_channels(in_channels, len(kernels), split)
        self.out_splits = split_channels(out_channels, len(kernels), split)
        self.convs = nn.ModuleList(
            conv2d(
                c_in,
                c_out,
                k,
                stride,
                d,
                groups=c_in if depthwise else 1,
                bias=bias,
                padding=padding,
            )
            for c_in, c_out, k, d in zip(self.in_splits, self.out_splits, kernels, dilations)
        )

    def forward(self, x: Tensor) -> Tensor:
        _checks.input_4d(x, self.in_channels, "MixConv2d")
        if len(self.convs) == 1:
            return self.convs[0](x)
        parts = torch.split(x, self.in_splits, dim=1)
        # index rather than zip over `parts`, so that torch.fx can trace it
        return torch.cat([conv(parts[i]) for i, conv in enumerate(self.convs)], dim=1)

    def extra_repr(self) -> str:
        kind = "depthwise" if self.depthwise else "grouped"
        dil = f", dilation={self.dilation}" if any(d > 1 for d in self.dilation) else ""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}{dil}, splits={self.out_splits}, {kind}, {self.padding}"
        )
