"""Xception from "Xception: Deep Learning with Depthwise Separable Convolutions", Chollet,
CVPR 2017, arXiv:1610.02357.

Defines `XceptionRow` (one block of the paper's Fig. 5), `Xception` and the builder `xception`
(aliased to timm's `legacy_xception`), laid out as timm's legacy_xception: 22,855,952 parameters.

Fig. 5: entry flow (3x3/2 conv 32, 3x3 conv 64, three residual blocks to 128, 256, 728 at stride
2 each), middle flow (8 blocks of three 728-wide separable convs), exit flow (a block to 1024 at
stride 2, separable convs to 1536 and 2048) -> global pool -> (dropout) -> FC. Input 299x299.

Notes on the reference:
- The two stem convs are unpadded (as Keras and timm), so maps are a little smaller than
  input / stride (299 -> 147, 74, 37, 19, 10); `feature_info` gives the nominal strides.
- Dropout 0.5 before the classifier, as the paper trains on ImageNet (§4.3); timm's default is 0.
- Every separable conv is followed by BN (§4.3: "all Convolution and SeparableConvolution layers
  are followed by batch normalization"), with no activation between its depthwise and pointwise
  parts (§4.7).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from torch import nn

from lightnets.blocks import XceptionBlock
from lightnets.blocks.xception_block import SeparableConv2d
from lightnets.cards import INCEPTION_MEAN, INCEPTION_STD, ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct
from lightnets.models._common import BlockSite, LightNet, build_stages, init_weights


@dataclass(frozen=True)
class XceptionRow:
    n: int  # blocks in this row; only the first uses stride s
    out: int  # output channels
    s: int  # stride of the first block
    reps: int  # separable convs per block
    _: KW_ONLY
    relu_first: bool = True  # False for the first block: the stem already ends in ReLU
    grow_first: bool = True  # widen in the first separable conv (else the last)

    def __post_init__(self):
        if self.n < 1 or self.out < 1 or self.reps < 1 or self.s not in (1, 2):
            raise ConfigError(f"bad row {self}")


# fmt: off
# Fig. 5; one stage per row (the entry-flow blocks each halve the resolution).
#               n   out  s  reps
XCEPTION = (
    XceptionRow(1,  128, 2, 2, relu_first=False),  # entry flow
    XceptionRow(1,  256, 2, 2),
    XceptionRow(1,  728, 2, 2),
    XceptionRow(8,  728, 1, 3),                    # middle flow, repeated 8 times
    XceptionRow(1, 1024, 2, 2, grow_first=False),  # exit flow
)
# fmt: on
STEM = (32, 64)  # the two entry-flow convs
HEAD = (1536, 2048)  # the exit flow's separable convs after the last block


class Xception(LightNet):
    """Xception: (N, in_chans, H, W) -> (N, num_classes); 299x299 in the paper.

    Args:
        drop_rate: dropout before the classifier (0.5 in the paper's ImageNet runs).
        small_input: stride-1 first conv, for 32-64 px inputs.
    """

    def __init__(
        self,
        *,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_rate: float = 0.5,
        small_input: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        stem = nn.Sequential(
            ConvNormAct(
                in_chans,
                STEM[0],
                norm_layer=norm_layer,
                conv=nn.Conv2d(in_chans, STEM[0], 3, 1 if small_input else 2, bias=False),
            ),
            ConvNormAct(
                STEM[0],
                STEM[1],
                norm_layer=norm_layer,
                conv=nn.Conv2d(STEM[0], STEM[1], 3, bias=False),
            ),
        )

        def block(row: XceptionRow, site: BlockSite) -> XceptionBlock:
            return XceptionBlock(
                site.in_channels, site.out_channels, row.reps, site.stride,
                start_with_relu=row.relu_first, grow_first=row.grow_first, norm_layer=norm_layer,
            )  # fmt: skip

        stages = build_stages(XCEPTION, STEM[1], block)
        in_channels = stages.out_channels
        head = nn.Sequential(
            OrderedDict(
                sep1=nn.Sequential(
                    SeparableConv2d(in_channels, HEAD[0]),
                    norm_layer(HEAD[0]),
                    nn.ReLU(inplace=True),
                ),
                sep2=nn.Sequential(
                    SeparableConv2d(HEAD[0], HEAD[1]), norm_layer(HEAD[1]), nn.ReLU(inplace=True)
                ),
            )
        )
        super().__init__(
            stem,
            stages.sequential(),
            head,
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=HEAD[1],
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=1 if small_input else 2,
            drop_rate=drop_rate,
        )
        init_weights(self)


@register_model(
    card=ModelCard(
        paper="arXiv:1610.02357",
        params_m=22.86,
        top1=79.0,
        img_size=299,
        min_input=32,
        ref_params=22855952,
        ref_macs_m=8357.40,
        ref_source="models.json: legacy_xception [measured] at 299 (timm 1.0.31)",
        timm_name="legacy_xception",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        crop_pct=0.8975,
        note="the paper gives no FLOPs; 8357.40M conv+linear MACs at 299x299 (4552.88M at 224x224)",
        aliases=("legacy_xception",),
    )
)
def xception(**kwargs) -> Xception:
    """Xception as in the paper's Fig. 5 (timm legacy_xception)."""
    return Xception(**kwargs)
