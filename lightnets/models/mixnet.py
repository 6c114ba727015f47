"""MixNet-S/M/L from "MixConv: Mixed Depthwise Convolutional Kernels", Tan & Le, BMVC 2019,
arXiv:1907.09595, and the MBConv network they share with MnasNet-A1 and EfficientNet-B0.

Defines `MixRow` (one row of a block table), `MixNet` (stem -> rows of MBConv blocks -> 1x1 head ->
classifier), the MixNet-S and MixNet-M tables (paper Fig. 4, official TF `mixnet_builder.py`), the
six MixNet builders, and `TIMM_RULES`, the state-dict renames for every timm model of this shape.

Notes on the reference:
- Rows are grouped into stages the way timm groups them (`blocks.i`): a new stage starts where the
  output width changes. Stage 0 is the expand-ratio-1 block (timm calls it DepthwiseSeparableConv).
- SE reduces to `int(C_in * se)` channels of the *block input* (TF `num_reduced_filters`), not of
  the expanded width; MixNet-L is the M table widened by 1.3 with every width (stem included)
  rounded to a multiple of 8; the 1536-wide head is not widened (TF and timm agree).
- `tf_mixnet_*` pad like TensorFlow ('SAME': asymmetric for stride 2) and use BN eps 1e-3 /
  momentum 0.01, which the TF-trained weights need; `mixnet_*` pad symmetrically with eps 1e-5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from functools import partial

from torch import nn

from lightnets.blocks import InvertedResidual
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct, get_act, make_divisible
from lightnets.models._common import BlockSite, LightNet, build_stages, by_width, init_weights
from lightnets.models._timm import register_timm_rules

# TF's BatchNorm: epsilon 1e-3, moving-average decay 0.99 (= PyTorch momentum 0.01)
TF_BATCHNORM = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)


@dataclass(frozen=True)
class MixRow:
    """One row of an MBConv table; the column names and order of every MBConv family's rows."""

    n: int  # blocks in this row; only the first uses stride s
    out: int  # output channels (before the width multiplier)
    s: int  # stride of the first block
    e: int  # expansion ratio of the 1x1 conv (1: no expansion conv)
    k: tuple[int, ...]  # depthwise kernel per channel group (MixConv)
    _: KW_ONLY
    pw: tuple[int, int] = (1, 1)  # groups of the expand / project 1x1 convs
    se: float = 0.0  # SE ratio, relative to the block's input channels
    act: str = "relu"
    skip: bool = True  # residual where stride 1 and widths match (MnasNet's first row: none)

    def __post_init__(self):
        if self.n < 1 or self.out < 1 or self.e < 1 or self.s not in (1, 2):
            raise ConfigError(f"bad row {self}")
        if not self.k or any(k % 2 == 0 for k in self.k) or min(self.pw) < 1:
            raise ConfigError(f"bad row {self}")


# fmt: off
# Paper Fig. 4 / TF mixnet_builder.py (e.g. 'r1_k3.5.7_a1_p1.1_s22_e6_i40_o80_se0.25_sw').
#          n  out  s  e  k
MIXNET_S = (
    MixRow(1,  16, 1, 1, (3,),              pw=(1, 1), se=0.0,  act="relu"),
    MixRow(1,  24, 2, 6, (3,),              pw=(2, 2), se=0.0,  act="relu"),
    MixRow(1,  24, 1, 3, (3,),              pw=(2, 2), se=0.0,  act="relu"),
    MixRow(1,  40, 2, 6, (3, 5, 7),         pw=(1, 1), se=0.5,  act="swish"),
    MixRow(3,  40, 1, 6, (3, 5),            pw=(2, 2), se=0.5,  act="swish"),
    MixRow(1,  80, 2, 6, (3, 5, 7),         pw=(1, 2), se=0.25, act="swish"),
    MixRow(2,  80, 1, 6, (3, 5),            pw=(1, 2), se=0.25, act="swish"),
    MixRow(1, 120, 1, 6, (3, 5, 7),         pw=(2, 2), se=0.5,  act="swish"),
    MixRow(2, 120, 1, 3, (3, 5, 7, 9),      pw=(2, 2), se=0.5,  act="swish"),
    MixRow(1, 200, 2, 6, (3, 5, 7, 9, 11),  pw=(1, 1), se=0.5,  act="swish"),
    MixRow(2, 200, 1, 6, (3, 5, 7, 9),      pw=(1, 2), se=0.5,  act="swish"),
)
# fmt: on

# fmt: off
#          n  out  s  e  k
MIXNET_M = (
    MixRow(1,  24, 1, 1, (3,),              pw=(1, 1), se=0.0,  act="relu"),
    MixRow(1,  32, 2, 6, (3, 5, 7),         pw=(2, 2), se=0.0,  act="relu"),
    MixRow(1,  32, 1, 3, (3,),              pw=(2, 2), se=0.0,  act="relu"),
    MixRow(1,  40, 2, 6, (3, 5, 7, 9),      pw=(1, 1), se=0.5,  act="swish"),
    MixRow(3,  40, 1, 6, (3, 5),            pw=(2, 2), se=0.5,  act="swish"),
    MixRow(1,  80, 2, 6, (3, 5, 7),         pw=(1, 1), se=0.25, act="swish"),
    MixRow(3,  80, 1, 6, (3, 5, 7, 9),      pw=(2, 2), se=0.25, act="swish"),
    MixRow(1, 120, 1, 6, (3,),              pw=(1, 1), se=0.5,  act="swish"),
    MixRow(3, 120, 1, 3, (3, 5, 7, 9),      pw=(2, 2), se=0.5,  act="swish"),
    MixRow(1, 200, 2, 6, (3, 5, 7, 9),      pw=(1, 1), se=0.5,  act="swish"),
    MixRow(3, 200, 1, 6, (3, 5, 7, 9),      pw=(1, 2), se=0.5,  act="swish"),
)
# fmt: on


def mbconv_block(
    row: MixRow,
    site: BlockSite,
    *,
    norm_layer: Callable[[int], nn.Module],
    padding: str,
    drop_path_rate: float,
) -> InvertedResidual:
    """The MBConv block of one table row at one place in the network."""
    return InvertedResidual(
        site.in_channels, site.out_channels, site.stride, row.e, row.k,
        expand_groups=row.pw[0], project_groups=row.pw[1],
        se_channels=max(1, int(site.in_channels * row.se)) if row.se else 0,
        act_layer=get_act(row.act), norm_layer=norm_layer, padding=padding,
        drop_path=site.drop_path(drop_path_rate), skip=row.skip,
    )  # fmt: skip


class MixNet(LightNet):
    """MBConv network from a table: (N, in_chans, H, W) -> (N, num_classes).

    stem 3x3/2 conv -> one stage per run of rows with the same width -> 1x1 head -> pool ->
    dropout -> classifier. MnasNet-A1 and EfficientNet-B0 are this network with other tables.

    Args:
        table: rows of blocks (MixRow).
        stem, head: stem and head widths; `width` scales the stem, the builder decides the head.
        width: channel multiplier; widths rounded to multiples of 8 (TF `round_filters`).
        depth: depth multiplier; each row repeats ceil(n * depth) times (TF `round_repeats`).
        act: activation of the stem and head (rows name their own).
        drop_path_rate: stochastic depth, growing linearly with the block index from 0.
        small_input: stride-1 stem for 32-64 px inputs.
        padding: "same" (symmetric) or "tf_same" (TensorFlow's, for TF-trained weights).
    """

    def __init__(
        self,
        table: Sequence[MixRow],
        *,
        stem: int,
        head: int,
        width: float = 1.0,
        depth: float = 1.0,
        act: str = "relu",
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        small_input: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        padding: str = "same",
    ):
        if width <= 0 or depth <= 0:
            raise ConfigError(f"width and depth must be positive, got width={width}, depth={depth}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ConfigError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        rows = [
            replace(r, n=math.ceil(r.n * depth), out=make_divisible(r.out * width)) for r in table
        ]
        stem_channels = make_divisible(stem * width)
        stem_stride = 1 if small_input else 2
        stem_layer = ConvNormAct(in_chans, stem_channels, 3, stem_stride, act_layer=get_act(act),
                                 norm_layer=norm_layer, padding=padding)  # fmt: skip

        block = partial(
            mbconv_block, norm_layer=norm_layer, padding=padding, drop_path_rate=drop_path_rate
        )
        stages = build_stages(rows, stem_channels, block, opens_stage=by_width)
        head_layer = ConvNormAct(
            stages.out_channels, head, act_layer=get_act(act), norm_layer=norm_layer
        )
        super().__init__(
            stem_layer, stages.sequential(), head_layer,
            in_chans=in_chans, num_classes=num_classes, num_features=head,
            stage_channels=stages.channels, stage_strides=stages.strides, stem_stride=stem_stride,
            drop_rate=drop_rate,
        )  # fmt: skip
        self.width, self.depth = width, depth
        init_weights(self)


# fmt: off
# timm (EfficientNet class) -> lightnets keys. Stage 0 is timm's DepthwiseSeparableConv (conv_dw,
# bn1, se, conv_pw, bn2), our block without expansion; later stages are timm's InvertedResidual
# (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3). timm numbers the parts of a split conv only when
# there are several ("conv_dw.weight" vs "conv_dw.0.weight"); ours always are (`convs.0`).
TIMM_RULES = (
    (r"conv_stem\.weight",                     r"stem.conv.weight"),
    (r"bn1\.(.+)",                             r"stem.bn.\1"),
    (r"blocks\.(0\.\d+)\.conv_dw\.weight",     r"stages.\1.dw.conv.convs.0.weight"),
    (r"blocks\.(0\.\d+)\.bn1\.(.+)",           r"stages.\1.dw.bn.\2"),
    (r"blocks\.(0\.\d+)\.conv_pw\.weight",     r"stages.\1.project.conv.convs.0.weight"),
    (r"blocks\.(0\.\d+)\.bn2\.(.+)",           r"stages.\1.project.bn.\2"),
    (r"blocks\.(\d+\.\d+)\.conv_pw\.weight",   r"stages.\1.expand.conv.convs.0.weight"),
    (r"blocks\.(\d+\.\d+)\.conv_pw\.(\d+)\.weight",  r"stages.\1.expand.conv.convs.\2.weight"),
    (r"blocks\.(\d+\.\d+)\.bn1\.(.+)",         r"stages.\1.expand.bn.\2"),
    (r"blocks\.(\d+\.\d+)\.conv_dw\.weight",   r"stages.\1.dw.conv.convs.0.weight"),
    (r"blocks\.(\d+\.\d+)\.conv_dw\.(\d+)\.weight",  r"stages.\1.dw.conv.convs.\2.weight"),
    (r"blocks\.(\d+\.\d+)\.bn2\.(.+)",         r"stages.\1.dw.bn.\2"),
    (r"blocks\.(\d+\.\d+)\.se\.conv_(reduce|expand)\.(.+)", r"stages.\1.se.\2.\3"),
    (r"blocks\.(\d+\.\d+)\.conv_pwl\.weight",  r"stages.\1.project.conv.convs.0.weight"),
    (r"blocks\.(\d+\.\d+)\.conv_pwl\.(\d+)\.weight", r"stages.\1.project.conv.convs.\2.weight"),
    (r"blocks\.(\d+\.\d+)\.bn3\.(.+)",         r"stages.\1.project.bn.\2"),
    (r"conv_head\.weight",                     r"head.conv.weight"),
    (r"bn2\.(.+)",                             r"head.bn.\1"),
    (r"classifier\.(weight|bias)",             r"classifier.\1"),
)
# fmt: on

_PAPER = "arXiv:1907.09595"
_FLOPS_NOTE = (
    "paper MACs ({paper}M) count more than convolutions and linear layers: fvcore's total for "
    "timm's {timm} is {fvcore}M, of which conv+linear (what ref_macs_m counts) is {ref}M"
)
_TF_NOTE = "; TF 'SAME' padding and BN eps 1e-3 for the TF-trained weights (timm tf_ variants)"


def _card(timm: str, params_m, macs_m, top1, ref_params, ref_macs_m, fvcore, tf=False, **kw):
    note = _FLOPS_NOTE.format(paper=macs_m, timm=timm, fvcore=fvcore, ref=ref_macs_m)
    return ModelCard(
        paper=_PAPER, params_m=params_m, macs_m=macs_m, top1=top1, ref_params=ref_params,
        ref_macs_m=ref_macs_m, ref_source=f"timm 1.0.31 {timm} [measured]", timm_name=timm,
        note=note + (_TF_NOTE if tf else ""), **kw,
    )  # fmt: skip


@register_model(card=_card("mixnet_s", 4.1, 256, 75.8, 4134606, 239.17, 251.74))
def mixnet_s(width: float = 1.0, depth: float = 1.0, **kwargs) -> MixNet:
    """MixNet-S (paper Fig. 4a): 4.1M params, 256M MACs, 75.8% top-1."""
    kwargs.setdefault("drop_rate", 0.2)
    return MixNet(MIXNET_S, stem=16, head=1536, width=width, depth=depth, **kwargs)


@register_model(card=_card("mixnet_m", 5.0, 360, 77.0, 5014382, 339.17, 355.61))
def mixnet_m(width: float = 1.0, depth: float = 1.0, **kwargs) -> MixNet:
    """MixNet-M (paper Fig. 4b): 5.0M params, 360M MACs, 77.0% top-1."""
    kwargs.setdefault("drop_rate", 0.25)
    return MixNet(MIXNET_M, stem=24, head=1536, width=width, depth=depth, **kwargs)


@register_model(card=_card("mixnet_l", 7.3, 565, 78.9, 7329252, 555.25, 576.97))
def mixnet_l(width: float = 1.3, depth: float = 1.0, **kwargs) -> MixNet:
    """MixNet-L = the MixNet-M table widened by 1.3: 7.3M params, 565M MACs, 78.9% top-1."""
    return mixnet_m(width=width, depth=depth, **kwargs)


def _tf(builder, **kwargs) -> MixNet:
    kwargs.setdefault("padding", "tf_same")
    kwargs.setdefault("norm_layer", TF_BATCHNORM)
    return builder(**kwargs)


@register_model(card=_card("tf_mixnet_s", 4.1, 256, 75.8, 4134606, 239.17, 251.74, tf=True))
def tf_mixnet_s(**kwargs) -> MixNet:
    """MixNet-S with TensorFlow padding and BN eps, for weights trained in TF."""
    return _tf(mixnet_s, **kwargs)


@register_model(card=_card("tf_mixnet_m", 5.0, 360, 77.0, 5014382, 339.17, 355.61, tf=True))
def tf_mixnet_m(**kwargs) -> MixNet:
    """MixNet-M with TensorFlow padding and BN eps, for weights trained in TF."""
    return _tf(mixnet_m, **kwargs)


@register_model(card=_card("tf_mixnet_l", 7.3, 565, 78.9, 7329252, 555.25, 576.97, tf=True))
def tf_mixnet_l(**kwargs) -> MixNet:
    """MixNet-L with TensorFlow padding and BN eps, for weights trained in TF."""
    return _tf(mixnet_l, **kwargs)


register_timm_rules(
    ["mixnet_s", "mixnet_m", "mixnet_l", "tf_mixnet_s", "tf_mixnet_m", "tf_mixnet_l"], TIMM_RULES
)
