"""MobileNetV2 from "MobileNetV2: Inverted Residuals and Linear Bottlenecks", Sandler et al.,
arXiv:1801.04381, and the MixConv study networks built on it ("MixConv: Mixed Depthwise
Convolutional Kernels", Tan & Le, arXiv:1907.09595, Fig. 4).

Defines the MobileNetV2 table (Table 2), the `MobileNetV2` model, the width variants
mobilenet_v2_w035 .. _w140 and the MixConv kernel study (mobilenet_v2_k3 .. _k13, every depthwise
kernel replaced by one size; mobilenet_v2_mixk3 .. _mixk13, by MDConv with {3, 5, .., k}).

As in the paper's official TF-slim code, timm and torchvision: ReLU6; every width (the stem's
included) is rounded with make_divisible(., 8); the last 1x1 conv keeps 1280 channels for widths
below 1 and is widened above (1.4 -> 1792); dropout 0.2 before the classifier (TF-slim's
`dropout_keep_prob=0.8`). The first row (t=1) has no expansion conv.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from torch import nn

from lightnets.blocks import InvertedResidual
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct, make_divisible
from lightnets.models._common import BlockSite, LightNet, build_stages, init_weights
from lightnets.models._kernel_study import KernelVariant, register_kernel_study
from lightnets.models._timm import register_timm_rules

PAPER = "arXiv:1801.04381"


@dataclass(frozen=True)
class IRRow:
    """One row of Table 2, in the column names and order of every MBConv table (mixnet.MixRow)."""

    n: int  # blocks in this row; only the first uses stride s
    out: int  # output channels c (before the width multiplier)
    s: int  # stride of the first block
    e: float  # expansion factor t
    k: tuple[int, ...] = (3,)  # depthwise kernel per channel group (MDConv when several)

    def __post_init__(self):
        if self.s not in (1, 2) or self.n < 1 or self.e <= 0 or any(k % 2 == 0 for k in self.k):
            raise ConfigError(f"bad row {self}")


# Table 2 (columns t, c, n, s) between the 3x3 stem conv (32, stride 2) and the 1x1 conv to 1280.
# fmt: off
#         n  out  s  e     (k defaults to (3,))
MOBILENET_V2 = (
    IRRow(1,  16, 1, 1),
    IRRow(2,  24, 2, 6),
    IRRow(3,  32, 2, 6),
    IRRow(4,  64, 2, 6),
    IRRow(3,  96, 1, 6),
    IRRow(3, 160, 2, 6),
    IRRow(1, 320, 1, 6),
)
# fmt: on


# name suffix -> depthwise kernels of every block; measured rows "MobileNetV2 dw kernels {..}"
# fmt: off
#                          kernel_sizes           params_m  macs_m
DW_KERNELS = {
    "k3":     KernelVariant((3,),                  3.5049,  300.77),
    "k5":     KernelVariant((5,),                  3.6190,  337.60),
    "k7":     KernelVariant((7,),                  3.7903,  392.85),
    "k9":     KernelVariant((9,),                  4.0187,  466.51),
    "k11":    KernelVariant((11,),                 4.3041,  558.58),
    "k13":    KernelVariant((13,),                 4.6466,  669.07),
    "mixk3":  KernelVariant((3,),                  3.5049,  300.77),
    "mixk5":  KernelVariant((3, 5),                3.5620,  319.19),
    "mixk7":  KernelVariant((3, 5, 7),             3.6380,  343.27),
    "mixk9":  KernelVariant((3, 5, 7, 9),          3.7332,  374.43),
    "mixk11": KernelVariant((3, 5, 7, 9, 11),      3.8457,  408.81),
    "mixk13": KernelVariant((3, 5, 7, 9, 11, 13),  3.9805,  452.56),
}
# fmt: on


def ir_block(
    row: IRRow,
    site: BlockSite,
    *,
    act_layer: type[nn.Module],
    norm_layer: Callable[[int], nn.Module],
    drop_path_rate: float = 0.0,
) -> InvertedResidual:
    """The inverted residual of one table row at one place in the network (MobileFaceNet's too)."""
    return InvertedResidual(
        site.in_channels, site.out_channels, site.stride, row.e, row.k,
        act_layer=act_layer, norm_layer=norm_layer, drop_path=site.drop_path(drop_path_rate),
    )  # fmt: skip


class MobileNetV2(LightNet):
    """MobileNetV2: 3x3 stem, one stage of inverted residuals per table row, 1x1 conv, pool, linear.

    (N, in_chans, H, W) -> (N, num_classes); `forward_features` gives (N, 320*width, H/32, W/32)
    and the head's 1x1 conv widens it to `num_features` (1280, or 1280*width above 1).

    Args:
        table: rows of `IRRow`; each row is one stage.
        width: width multiplier (channels rounded to multiples of 8).
        small_input: stride-1 stem for 16-64 px inputs (CIFAR-style); the stages are unchanged.
        drop_path_rate: stochastic depth of the residual branches, rising linearly with depth.
    """

    def __init__(
        self,
        table: Sequence[IRRow] = MOBILENET_V2,
        *,
        width: float = 1.0,
        stem_channels: int = 32,
        head_channels: int = 1280,
        in_chans: int = 3,
        num_classes: int = 1000,
        small_input: bool = False,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        act_layer: type[nn.Module] = nn.ReLU6,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        if not width > 0:
            raise ConfigError(f"width must be positive, got {width!r}")
        stem_stride = 1 if small_input else 2
        channels = make_divisible(stem_channels * width)
        stem = ConvNormAct(
            in_chans, channels, 3, stem_stride, act_layer=act_layer, norm_layer=norm_layer
        )

        block = partial(
            ir_block, act_layer=act_layer, norm_layer=norm_layer, drop_path_rate=drop_path_rate
        )
        stages = build_stages(
            table, channels, block, width=lambda row: make_divisible(row.out * width)
        )
        # the last conv only grows with the multiplier (paper §6.1: "except the last layer")
        num_features = make_divisible(head_channels * width) if width > 1 else head_channels
        head = ConvNormAct(
            stages.out_channels, num_features, 1, act_layer=act_layer, norm_layer=norm_layer
        )
        super().__init__(
            stem,
            stages.sequential(),
            head,
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=num_features,
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=stem_stride,
            drop_rate=drop_rate,
        )
        init_weights(self)


def mobilenet_v2(width: float = 1.0, kernel_sizes: Sequence[int] = (3,), **kwargs) -> MobileNetV2:
    """MobileNetV2 with every depthwise kernel replaced by `kernel_sizes` (MixConv study factory).

    One size (`(7,)`) is a plain depthwise conv; several (`(3, 5, 7)`) an MDConv whose channels
    split equally, the remainder to the first group.
    """
    table = tuple(replace(row, k=tuple(kernel_sizes)) for row in MOBILENET_V2)
    return MobileNetV2(table, width=width, **kwargs)


_NOTE = "Paper counts multiply-adds like the conv+linear count here. "
_CLOSED_FORM = (
    "No figure in the paper (Fig. 5 plots the widths) nor a measured reference: ref_params / "
    "ref_macs_m are our closed-form count (stem; per block expand/dw/project weights + BN; head "
    "conv; classifier; MACs = weights x output pixels at 224). For comparison, the TF-slim "
    "README lists for its checkpoint ({tf})."
)
_CLOSED_SOURCE = "closed-form count (tests/test_mobilenet.py)"


@register_model(
    card=ModelCard(
        paper=PAPER,
        ref_params=1677128,
        ref_macs_m=59.29,
        ref_source=_CLOSED_SOURCE,
        timm_name="mobilenetv2_035",
        aliases=("mobilenetv2_035",),
        note=_NOTE + _CLOSED_FORM.format(tf="1.66M params, 59M MACs, 60.3% top-1"),
    )
)
def mobilenet_v2_w035(**kwargs) -> MobileNetV2:
    """MobileNetV2 0.35 (stem 16 channels, head conv still 1280)."""
    return MobileNetV2(width=0.35, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        ref_params=1968680,
        ref_macs_m=97.13,
        ref_source=_CLOSED_SOURCE,
        timm_name="mobilenetv2_050",
        aliases=("mobilenetv2_050",),
        note=_NOTE + _CLOSED_FORM.format(tf="1.95M params, 97M MACs, 65.4% top-1"),
    )
)
def mobilenet_v2_w050(**kwargs) -> MobileNetV2:
    """MobileNetV2 0.5."""
    return MobileNetV2(width=0.5, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        ref_params=2636424,
        ref_macs_m=209.07,
        ref_source=_CLOSED_SOURCE,
        timm_name="mobilenetv2_075",
        aliases=("mobilenetv2_075",),
        note=_NOTE + _CLOSED_FORM.format(tf="2.61M params, 209M MACs, 69.8% top-1"),
    )
)
def mobilenet_v2_w075(**kwargs) -> MobileNetV2:
    """MobileNetV2 0.75."""
    return MobileNetV2(width=0.75, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=3.4,
        macs_m=300,
        top1=72.0,
        ref_params=3504872,
        ref_macs_m=300.77,
        ref_source="models.json: mobilenetv2_100 [measured] (timm 1.0.31; torchvision identical)",
        timm_name="mobilenetv2_100",
        aliases=("mobilenetv2_100", "mobilenet_v2"),
        note=_NOTE + "Paper figures: Table 4. The paper's 3.4M is 3.50M with the classifier.",
    )
)
def mobilenet_v2_w100(**kwargs) -> MobileNetV2:
    """MobileNetV2 1.0 (Table 4); loads timm's mobilenetv2_100 weights."""
    return MobileNetV2(width=1.0, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=6.9,
        macs_m=585,
        top1=74.7,
        ref_params=6108776,
        ref_macs_m=582.2,
        ref_source="models.json: mobilenetv2_140 [measured] (timm 1.0.31)",
        timm_name="mobilenetv2_140",
        aliases=("mobilenetv2_140",),
        note=_NOTE + "Paper figures: Table 4. The paper says 6.9M parameters, but the network it "
        "describes (and timm's mobilenetv2_140, TF-slim's 6.06M) has 6.11M.",
    )
)
def mobilenet_v2_w140(**kwargs) -> MobileNetV2:
    """MobileNetV2 1.4 (Table 4): every width x1.4, head conv 1792."""
    return MobileNetV2(width=1.4, **kwargs)


register_kernel_study("mobilenet_v2", "MobileNetV2", DW_KERNELS, mobilenet_v2)


# timm `mobilenetv2_*` (EfficientNet builder: block 0 is a 'ds' block, the rest 'ir') -> lightnets.
TIMM_RULES = (
    (r"conv_stem\.(.+)", r"stem.conv.\1"),
    (r"bn1\.(.+)", r"stem.bn.\1"),
    (r"blocks\.0\.0\.conv_dw\.(.+)", r"stages.0.0.dw.conv.convs.0.\1"),
    (r"blocks\.0\.0\.bn1\.(.+)", r"stages.0.0.dw.bn.\1"),
    (r"blocks\.0\.0\.conv_pw\.(.+)", r"stages.0.0.project.conv.convs.0.\1"),
    (r"blocks\.0\.0\.bn2\.(.+)", r"stages.0.0.project.bn.\1"),
    (r"blocks\.(\d+)\.(\d+)\.conv_pw\.(.+)", r"stages.\1.\2.expand.conv.convs.0.\3"),
    (r"blocks\.(\d+)\.(\d+)\.bn1\.(.+)", r"stages.\1.\2.expand.bn.\3"),
    (r"blocks\.(\d+)\.(\d+)\.conv_dw\.(.+)", r"stages.\1.\2.dw.conv.convs.0.\3"),
    (r"blocks\.(\d+)\.(\d+)\.bn2\.(.+)", r"stages.\1.\2.dw.bn.\3"),
    (r"blocks\.(\d+)\.(\d+)\.conv_pwl\.(.+)", r"stages.\1.\2.project.conv.convs.0.\3"),
    (r"blocks\.(\d+)\.(\d+)\.bn3\.(.+)", r"stages.\1.\2.project.bn.\3"),
    (r"conv_head\.(.+)", r"head.conv.\1"),
    (r"bn2\.(.+)", r"head.bn.\1"),
    (r"classifier\.(.+)", r"classifier.\1"),
)
register_timm_rules([f"mobilenet_v2_w{w}" for w in ("035", "050", "075", "100", "140")], TIMM_RULES)
