"""Channel alignment for ONNX Runtime's blocked (NCHWc) CPU convolutions: an exact rewrite.

ORT runs a conv in its fast blocked layout only when the channel counts fit its block size B
(16 with AVX-512, 8 with AVX2; onnxruntime/core/optimizer/nchwc_transformer.cc): a grouped conv
needs C_in/g and C_out/g to be multiples of B, a regular conv C_in < B or a multiple of B. Every
conv that misses this is surrounded by layout reorders. Re-parameterized MixNet still has two
such cases, and both have exact fixes:

- split 1x1 convs (groups=2) of 24/40/120/200 channels: groups of 12/20/60/100 channels miss B.
  They become one dense 1x1 conv with a block-diagonal kernel (2x the MACs of that layer, but in
  the fast layout).
- SE's reduced width (e.g. 20 channels): the expand conv's input misses B. It is zero-padded to
  a multiple of B; the extra channels have zero weights in and out, so they contribute nothing.

The SE gate itself (x * gate, broadcast over H, W) still runs in NCHW: ORT blocks a Mul only when
it can prove both inputs have the same shape. Broadcasting the gate with a Resize first keeps it
blocked, but was not faster (docs/deploy.md). Nor is this alignment itself, measured at 2 threads
(docs/deploy.md): the dense convs cost about what the saved reorders did, so it stays an option.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lightnets.layers.attention import SqueezeExcite


def _misaligned_grouped(conv: nn.Conv2d, block: int) -> bool:
    g = conv.groups
    if g == 1 or g == conv.in_channels:  # regular or depthwise: ORT handles both
        return False
    return (conv.in_channels // g) % block != 0 or (conv.out_channels // g) % block != 0


def _dense(conv: nn.Conv2d) -> nn.Conv2d:
    g = conv.groups
    c_in, c_out = conv.in_channels // g, conv.out_channels // g
    dense = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        1,
        conv.bias is not None,
    ).to(conv.weight)
    weight = torch.zeros_like(dense.weight)
    for i in range(g):
        weight[i * c_out : (i + 1) * c_out, i * c_in : (i + 1) * c_in] = conv.weight[
            i * c_out : (i + 1) * c_out
        ]
    dense.weight.copy_(weight)
    if conv.bias is not None:
        dense.bias.copy_(conv.bias)
    return dense.requires_grad_(False)


def _pad_squeeze(se: SqueezeExcite, block: int) -> None:
    reduced = se.reduce.out_channels
    padded = -(-reduced // block) * block
    if padded == reduced or isinstance(se.act, nn.PReLU):  # PReLU's slopes would need padding too
        return
    reduce = nn.Conv2d(se.reduce.in_channels, padded, 1).to(se.reduce.weight)
    expand = nn.Conv2d(padded, se.expand.out_channels, 1).to(se.expand.weight)
    for layer in (reduce, expand):
        layer.weight.zero_()
        layer.bias.zero_()
    reduce.weight[:reduced] = se.reduce.weight
    reduce.bias[:reduced] = se.reduce.bias
    expand.weight[:, :reduced] = se.expand.weight
    expand.bias.copy_(se.expand.bias)
    se.reduce, se.expand = reduce.requires_grad_(False), expand.requires_grad_(False)


def align_channels(model: nn.Module, block: int = 16) -> nn.Module:
    """A copy of a (re-parameterized) model with grouped convs that miss `block` made dense and
    SE widths padded to a multiple of `block`; same function, more MACs, fewer layout reorders."""
    aligned = copy.deepcopy(model)
    with torch.no_grad():
        for name, module in list(aligned.named_modules()):
            # exact nn.Conv2d only: a TfSameConv2d pads in forward, which a plain copy would lose
            if type(module) is nn.Conv2d and _misaligned_grouped(module, block):
                parent_name, _, child = name.rpartition(".")
                parent = aligned.get_submodule(parent_name) if parent_name else aligned
                setattr(parent, child, _dense(module))
            elif isinstance(module, SqueezeExcite):
                _pad_squeeze(module, block)
    return aligned
