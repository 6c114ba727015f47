"""Mixed depthwise convolution (MDConv) from "MixConv: Mixed Depthwise Convolutional Kernels",
Tan & Le, BMVC 2019, arXiv:1907.09595.

Channels are split into groups, each group is convolved with its own kernel size, and the outputs
are concatenated. The equal split gives the remainder to the first group, as the official TF
code does.

The same function can run as ONE convolution: zero-pad every group's kernel (centred) to the
largest size and stack them. `impl="merged"` assembles that kernel from the real weights on each
forward (the padding is not a parameter, so gradients reach only the real weights); it costs extra
MACs on the zeros but saves the split, the concat and the per-group launches. `impl="auto"` is a
rule on the layer's own arguments, so that a layer always runs (and exports) the same graph:
merged exactly when it costs no extra MACs (equal kernels, or a split 1x1 conv with equal groups),
split otherwise. Measured: forward+backward of MixNet-S's 8 mixed depthwise layers on CPU, split
was faster in all 8, even at 1.5x MACs for (3, 5) (`benchmarks/deploy.py --mixconv`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.layers import _checks
from lightnets.layers.padding import conv2d, pad_tf_same

SPLITS = ("equal", "exponential")
IMPLS = ("split", "merged", "auto")
DEFAULT_IMPL = "split"  # chosen by measurement; see benchmarks/deploy.py --mixconv


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
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if min(sizes) < 1:
        raise ConfigError(
            f"cannot split {channels} channels into {groups} groups ({split} split gives {sizes})"
        )
    return sizes


def _is_channels_last(x: Tensor) -> bool:
    return (
        not _checks.is_fx_tracing()
        and x.dim() == 4
        and x.shape[1] > 1
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()
    )


class _DenseChannelsLastGrad(torch.autograd.Function):
    """Identity whose backward hands on the gradient as a dense channels_last tensor."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


def pad_kernel(weight: Tensor, kernel: int, size: int, dilation: int = 1) -> Tensor:
    """(O, I, k, k) -> (O, I, size, size): dilated by inserting zeros, then centred in zeros.

    A conv with the result and padding (size - 1) // 2 equals the original conv with padding
    dilation * (k - 1) // 2, because the centre tap stays at the centre. Differentiable in
    `weight`; sizes come from the ints, not from `weight.shape`, so that torch.fx can trace it.
    """
    if dilation > 1:  # (O, I, k, 1, k, 1) -> zeros after each tap -> (O, I, k*d, k*d), cropped
        extent = dilation * (kernel - 1) + 1
        weight = F.pad(weight[:, :, :, None, :, None], [0, dilation - 1, 0, 0, 0, dilation - 1])
        weight = weight.flatten(4, 5).flatten(2, 3)[..., :extent, :extent]
        kernel = extent
    margin = (size - kernel) // 2
    return F.pad(weight, [margin] * 4) if margin else weight


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
        impl: "split" (one conv per group + concat), "merged" (one conv on the zero-padded
            kernels, see `merged_weight`) or "auto" (merged where that adds no MACs, see
            `auto_impl`). All three compute the same function with the same weights.
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
        impl: str = DEFAULT_IMPL,
    ):
        super().__init__()
        kernels = _checks.odd_kernels("kernel_size", kernel_size)
        dilations = (dilation,) * len(kernels) if isinstance(dilation, int) else tuple(dilation)
        if len(dilations) != len(kernels):
            raise ConfigError(f"dilation {dilation!r} must be one int or one per kernel {kernels}")
        for d in dilations:
            _checks.positive("dilation", d)
        _checks.stride(stride)
        if depthwise and out_channels != in_channels:
            raise ConfigError(
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
        if impl not in IMPLS:
            raise ConfigError(f"impl must be one of {IMPLS}, got {impl!r}")
        if impl == "merged" and self.merge_blocker():
            raise ConfigError(f"impl='merged' is not exact here: {self.merge_blocker()}")
        self.impl = impl

    # ------------------------------------------------------------------ the merged form

    def merge_blocker(self) -> str | None:
        """Why one convolution cannot reproduce this layer exactly, or None if it can."""
        if self.padding == "tf_same" and self.stride > 1:
            # TF SAME pads (out-1)*s + k - size, clamped at 0. Centring k in K adds (K-k)/2 on
            # both sides, which is exact unless the clamp bites: a 1x1 kernel at stride 2 on an
            # even size needs -1 (no pad) while the merged kernel would pad one pixel.
            small = [k for k, d in zip(self.kernel_size, self.dilation) if d * (k - 1) + 1 < 2]
            if small and len(set(self.kernel_size)) > 1:
                return f"tf_same at stride {self.stride} with kernel 1 beside larger ones"
        return None

    @property
    def merged_dilation(self) -> int:
        """Dilation of the merged conv: the common one, or 1 when kernels are dilated explicitly."""
        return self.dilation[0] if len(set(self.dilation)) == 1 else 1

    @property
    def merged_kernel_size(self) -> int:
        d = self.merged_dilation
        return max((di * (k - 1)) // d + 1 for k, di in zip(self.kernel_size, self.dilation))

    @property
    def merged_groups(self) -> int:
        """Depthwise: C. Equal splits: one group per split. Unequal: 1 (block-diagonal kernel)."""
        if self.depthwise:
            return self.in_channels
        even = len(set(self.in_splits)) == 1 and len(set(self.out_splits)) == 1
        return len(self.convs) if even else 1

    def merged_weight(self) -> Tensor:
        """The single kernel (C_out, C_in / merged_groups, K, K) equal to all groups together."""
        size, common = self.merged_kernel_size, self.merged_dilation
        kernels = [
            pad_kernel(conv.weight, k, size, d // common)
            for conv, k, d in zip(self.convs, self.kernel_size, self.dilation)
        ]
        if self.merged_groups == 1 and len(kernels) > 1:  # unequal splits: block-diagonal
            starts = [sum(self.in_splits[:i]) for i in range(len(kernels))]
            kernels = [
                F.pad(kernel, [0, 0, 0, 0, start, self.in_channels - start - c_in])
                for kernel, start, c_in in zip(kernels, starts, self.in_splits)
            ]
        return torch.cat(kernels, 0)

    def merged_bias(self) -> Tensor | None:
        if self.convs[0].bias is None:
            return None
        return torch.cat([conv.bias for conv in self.convs], 0)

    def _forward_merged(self, x: Tensor) -> Tensor:
        size, d = self.merged_kernel_size, self.merged_dilation
        if self.padding == "tf_same" and self.stride > 1:
            x, pad = pad_tf_same(x, size, self.stride, d), 0
        else:
            pad = d * (size - 1) // 2
        return F.conv2d(
            x,
            self.merged_weight(),
            self.merged_bias(),
            self.stride,
            pad,
            d,
            self.merged_groups,
        )

    def _forward_split(self, x: Tensor) -> Tensor:
        parts = torch.split(x, self.in_splits, dim=1)
        if self.training and torch.is_grad_enabled() and _is_channels_last(x):
            return torch.cat(self._channels_last_training(parts), dim=1)
        # index rather than zip over `parts`, so that torch.fx can trace it
        return torch.cat([conv(parts[i]) for i, conv in enumerate(self.convs)], dim=1)

    def _channels_last_training(self, parts: Sequence[Tensor]) -> list[Tensor]:
        """The groups' convs on dense channels_last slices, with dense channels_last gradients.

        A channel slice of a channels_last tensor is strided, and the CPU convolution then takes
        its slow NCHW path, in the backward too, where the gradient of `cat` arrives as such a
        slice. Measured on MixNet-S's training step (32 px, batch 64, 2 threads, min of 5
        rounds): NCHW 841 ms, channels_last 680 ms, channels_last with this 583 ms.
        """
        outs = []
        for i, conv in enumerate(self.convs):
            part = parts[i].contiguous(memory_format=torch.channels_last)
            outs.append(_DenseChannelsLastGrad.apply(conv(part)))
        return outs

    def split_macs(self) -> int:
        """Multiply-adds per output pixel of the split form: the sum over the groups."""
        return sum(
            conv.out_channels * conv.in_channels // conv.groups * k * k
            for conv, k in zip(self.convs, self.kernel_size)
        )

    def merged_macs(self) -> int:
        """Multiply-adds per output pixel of the merged form, zero taps included."""
        size = self.merged_kernel_size
        return self.out_channels * self.in_channels // self.merged_groups * size * size

    @property
    def chosen_impl(self) -> str:
        """The impl `forward` runs: `impl`, with "auto" resolved by `auto_impl`."""
        return self.auto_impl() if self.impl == "auto" else self.impl

    def auto_impl(self) -> str:
        """What impl="auto" runs: "merged" where it is exact and adds no MACs, else "split".

        A rule on the layer's arguments, not a timing: the choice (and an exported graph) is the
        same in every process, whatever ran before. Where merging adds zero taps, split measured
        faster on CPU for every MixNet-S layer (module docstring); no GPU measurement exists.
        """
        if self.merge_blocker() or self.merged_macs() > self.split_macs():
            return "split"
        return "merged"

    def forward(self, x: Tensor) -> Tensor:
        _checks.input_4d(x, self.in_channels, "MixConv2d")
        if len(self.convs) == 1:
            return self.convs[0](x)
        if self.chosen_impl == "merged":
            return self._forward_merged(x)
        return self._forward_split(x)

    def extra_repr(self) -> str:
        kind = "depthwise" if self.depthwise else "grouped"
        dil = f", dilation={self.dilation}" if any(d > 1 for d in self.dilation) else ""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}{dil}, splits={self.out_splits}, {kind}, {self.padding}"
            + ("" if self.impl == "split" else f", impl={self.impl}")
        )
