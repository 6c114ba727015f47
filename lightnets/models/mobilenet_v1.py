"""MobileNetV1 from "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", Howard et al., arXiv:1704.04861, and the MixConv study networks built on it
("MixConv: Mixed Depthwise Convolutional Kernels", Tan & Le, arXiv:1907.09595, Fig. 4).

Defines the MobileNetV1 table (Table 1), the `MobileNetV1` model, the width variants of Table 6
(mobilenet_v1_w025 .. _w100) and the MixConv kernel study (mobilenet_v1_k3 .. _k13, every
depthwise kernel replaced by one size; mobilenet_v1_mixk3 .. _mixk13, by MDConv with {3, 5, .., k}).

Deviations from the paper, all as in the official TF-slim code and timm's `mobilenetv1_100`:
- ReLU6 instead of ReLU (the paper writes ReLU; the released checkpoints use ReLU6);
- the last depthwise conv has stride 1 (Table 1 prints "s2", a typo: the map stays 7x7);
- dropout 0.001 before the classifier (TF-slim's `dropout_keep_prob=0.999`; the paper names none);
- widths are rounded to multiples of 8 (make_divisible), which changes no width of Table 6.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from torch import nn

from lightnets.blocks import DepthwiseSeparableConv2d
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct, make_divisible
from lightnets.models._common import BlockSite, LightNet, build_stages, init_weights
from lightnets.models._kernel_study import KernelVariant, register_kernel_study
from lightnets.models._timm import register_timm_rules

PAPER = "arXiv:1704.04861"


@dataclass(frozen=True)
class DSRow:
    n: int  # blocks in this row; only the first uses stride s
    out: int  # output channels of every block in the row (before the width multiplier)
    s: int  # stride of the first block
    k: tuple[int, ...] = (3,)  # depthwise kernel per channel group (MDConv when several)

    def __post_init__(self):
        if self.s not in (1, 2) or self.n < 1 or any(k % 2 == 0 for k in self.k):
            raise ConfigError(f"bad row {self}")


# Table 1 after the 3x3 stem conv (32 channels, stride 2); each block is dw 3x3 -> 1x1.
# fmt: off
#         n   out  s      (k defaults to (3,))
MOBILENET_V1 = (
    DSRow(1,   64, 1),
    DSRow(2,  128, 2),
    DSRow(2,  256, 2),
    DSRow(6,  512, 2),
    DSRow(2, 1024, 2),
)
# fmt: on


# name suffix -> depthwise kernels of every block; measured rows "MobileNetV1 dw kernels {..}"
# fmt: off
#                          kernel_sizes           params_m  macs_m
DW_KERNELS = {
    "k3":     KernelVariant((3,),                  4.2320,  568.74),
    "k5":     KernelVariant((5,),                  4.3113,  599.65),
    "k7":     KernelVariant((7,),                  4.4304,  646.01),
    "k9":     KernelVariant((9,),                  4.5891,  707.83),
    "k11":    KernelVariant((11,),                 4.7875,  785.10),
    "k13":    KernelVariant((13,),                 5.0256,  877.82),
    "mixk3":  KernelVariant((3,),                  4.2320,  568.74),
    "mixk5":  KernelVariant((3, 5),                4.2717,  584.19),
    "mixk7":  KernelVariant((3, 5, 7),             4.3242,  604.07),
    "mixk9":  KernelVariant((3, 5, 7, 9),          4.3907,  630.56),
    "mixk11": KernelVariant((3, 5, 7, 9, 11),      4.4686,  658.94),
    "mixk13": KernelVariant((3, 5, 7, 9, 11, 13),  4.5604,  694.08),
}
# fmt: on


class MobileNetV1(LightNet):
    """MobileNetV1: 3x3 stem, one stage of depthwise separable blocks per table row, pool, linear.

    (N, in_chans, H, W) -> (N, num_classes); `forward_features` gives (N, 1024*width, H/32, W/32).

    Args:
        table: rows of `DSRow`; each row is one stage.
        width: width multiplier alpha (every width, the stem's too, rounded to a multiple of 8).
        small_input: stride-1 stem for 16-64 px inputs (CIFAR-style); the stages are unchanged.
    """

    def __init__(
        self,
        table: Sequence[DSRow] = MOBILENET_V1,
        *,
        width: float = 1.0,
        stem_channels: int = 32,
        in_chans: int = 3,
        num_classes: int = 1000,
        small_input: bool = False,
        drop_rate: float = 0.001,
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

        def block(row: DSRow, site: BlockSite) -> DepthwiseSeparableConv2d:
            return DepthwiseSeparableConv2d(
                site.in_channels, site.out_channels, site.stride, row.k, pw_act=True,
                act_layer=act_layer, norm_layer=norm_layer,
            )  # fmt: skip

        stages = build_stages(
            table, channels, block, width=lambda row: make_divisible(row.out * width)
        )
        super().__init__(
            stem,
            stages.sequential(),
            nn.Identity(),  # no head conv: pool the last block
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=stages.out_channels,
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=stem_stride,
            drop_rate=drop_rate,
        )
        init_weights(self)


def mobilenet_v1(width: float = 1.0, kernel_sizes: Sequence[int] = (3,), **kwargs) -> MobileNetV1:
    """MobileNetV1 with every depthwise kernel replaced by `kernel_sizes` (MixConv study factory).

    One size (`(7,)`) is a plain depthwise conv; several (`(3, 5, 7)`) an MDConv whose channels
    split equally, the remainder to the first group.
    """
    table = tuple(replace(row, k=tuple(kernel_sizes)) for row in MOBILENET_V1)
    return MobileNetV1(table, width=width, **kwargs)


_NOTE = (
    "Paper counts multiply-adds like the conv+linear count here. ReLU6 (TF-slim, timm) "
    "instead of the paper's ReLU. "
)
_CLOSED_FORM = (
    "ref_params / ref_macs_m: our closed-form count (stem 27c + BN; per block "
    "k*k*c_in + c_in*c_out + BN; classifier; MACs = weights x output pixels at 224), "
    "no measured reference exists for this width. "
)


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=0.5,
        macs_m=41,
        top1=50.6,
        ref_params=470072,
        ref_macs_m=41.03,
        ref_source="closed-form count (tests/test_mobilenet.py)",
        note=_NOTE + _CLOSED_FORM + "Paper figures: Table 6 (0.5M is 0.47M rounded).",
    )
)
def mobilenet_v1_w025(**kwargs) -> MobileNetV1:
    """MobileNetV1 0.25 (Table 6)."""
    return MobileNetV1(width=0.25, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=1.3,
        macs_m=149,
        top1=63.7,
        ref_params=1331592,
        ref_macs_m=149.50,
        ref_source="closed-form count (tests/test_mobilenet.py)",
        note=_NOTE + _CLOSED_FORM + "Paper figures: Table 6.",
    )
)
def mobilenet_v1_w050(**kwargs) -> MobileNetV1:
    """MobileNetV1 0.5 (Table 6)."""
    return MobileNetV1(width=0.5, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=2.6,
        macs_m=325,
        top1=68.4,
        ref_params=2585560,
        ref_macs_m=325.40,
        ref_source="closed-form count (tests/test_mobilenet.py)",
        note=_NOTE + _CLOSED_FORM + "Paper figures: Table 6.",
    )
)
def mobilenet_v1_w075(**kwargs) -> MobileNetV1:
    """MobileNetV1 0.75 (Table 6)."""
    return MobileNetV1(width=0.75, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=4.2,
        macs_m=569,
        top1=70.6,
        ref_params=4231976,
        ref_macs_m=568.74,
        ref_source="models.json: mobilenetv1_100 [measured] (timm 1.0.31)",
        timm_name="mobilenetv1_100",
        aliases=("mobilenetv1_100",),
        note=_NOTE + "Paper figures: Table 8 (MixConv/MnasNet cite 575M MACs).",
    )
)
def mobilenet_v1_w100(**kwargs) -> MobileNetV1:
    """MobileNetV1 1.0 (Table 8); loads timm's mobilenetv1_100 weights."""
    return MobileNetV1(width=1.0, **kwargs)


register_kernel_study("mobilenet_v1", "MobileNetV1", DW_KERNELS, mobilenet_v1)


# timm `mobilenetv1_100` (EfficientNet builder, 'dsa' blocks) -> lightnets keys.
TIMM_RULES = (
    (r"conv_stem\.(.+)", r"stem.conv.\1"),
    (r"bn1\.(.+)", r"stem.bn.\1"),
    (r"blocks\.(\d+)\.(\d+)\.conv_dw\.(.+)", r"stages.\1.\2.dw.conv.convs.0.\3"),
    (r"blocks\.(\d+)\.(\d+)\.bn1\.(.+)", r"stages.\1.\2.dw.bn.\3"),
    (r"blocks\.(\d+)\.(\d+)\.conv_pw\.(.+)", r"stages.\1.\2.pw.conv.\3"),
    (r"blocks\.(\d+)\.(\d+)\.bn2\.(.+)", r"stages.\1.\2.pw.bn.\3"),
    (r"classifier\.(.+)", r"classifier.\1"),
)
register_timm_rules(
    ["mobilenet_v1_w025", "mobilenet_v1_w050", "mobilenet_v1_w075", "mobilenet_v1_w100"],
    TIMM_RULES,
)
