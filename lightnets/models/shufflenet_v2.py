"""ShuffleNetV2 0.5x-2.0x from "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", Ma et al., ECCV 2018, arXiv:1807.11164.

Defines `V2Row` (one row of the paper's Table 5), `ShuffleNetV2` and the builders
`shufflenet_v2_w{050,100,150,200}`, aliased to torchvision's `shufflenet_v2_x{0_5,1_0,1_5,2_0}`.

The network is Table 5: 3x3/2 conv (24) -> 3x3/2 max pool -> stages 2, 3, 4 of 4, 8 and 4
`ShuffleUnitV2`s (the first of each with stride 2) -> 1x1 conv (1024, or 2048 at 2x) -> global
pool -> FC. Layer for layer as torchvision, so parameter counts are equal (1,366,792 at 0.5x).
Deviation: the paper's 597 MFLOPs / 75.4% 2x result quoted by MixConv is the SE variant; this is
the plain 2x (591 MFLOPs, 74.9%).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from lightnets.blocks import ShuffleUnitV2
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct
from lightnets.models._common import BlockSite, LightNet, StageRow, build_stages, init_weights
from lightnets.models.shufflenet_v1 import STEM_CHANNELS, shufflenet_stem


@dataclass(frozen=True)
class V2Row:
    width: float  # the paper's scale factor
    channels: tuple[int, int, int]  # outputs of stages 2, 3, 4
    head: int  # the final 1x1 conv (conv5)

    def __post_init__(self):
        if len(self.channels) != 3 or any(c % 2 for c in self.channels) or self.head < 1:
            raise ConfigError(f"bad row {self}")


# fmt: off
# Table 5 of the paper: output channels per stage for each network size. The widths are not a
# plain multiple of the 1x ones (they keep the FLOPs budget), so each size is its own row.
#      width  stage2 stage3 stage4  conv5
SHUFFLENET_V2 = (
    V2Row(0.5, (48,    96,   192),  1024),
    V2Row(1.0, (116,  232,   464),  1024),
    V2Row(1.5, (176,  352,   704),  1024),
    V2Row(2.0, (244,  488,   976),  2048),
)
# fmt: on
REPEATS = (4, 8, 4)  # units in stages 2, 3, 4; the first of each has stride 2


class ShuffleNetV2(LightNet):
    """ShuffleNetV2 of the paper's Table 5: (N, in_chans, H, W) -> (N, num_classes).

    Args:
        width: 0.5, 1.0, 1.5 or 2.0 (a row of Table 5).
        small_input: stride-1 stem conv and no max pool, for 32-64 px inputs.
    """

    def __init__(
        self,
        width: float = 1.0,
        *,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_rate: float = 0.0,
        small_input: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        rows = {row.width: row for row in SHUFFLENET_V2}
        if width not in rows:
            raise ConfigError(f"width must be one of {sorted(rows)} (Table 5), got {width!r}")
        row = rows[width]

        def block(stage: StageRow, site: BlockSite) -> ShuffleUnitV2:
            return ShuffleUnitV2(
                site.in_channels, site.out_channels, site.stride, norm_layer=norm_layer
            )

        stage_rows = [StageRow(n, out, 2) for n, out in zip(REPEATS, row.channels)]
        stages = build_stages(stage_rows, STEM_CHANNELS, block)
        head = ConvNormAct(stages.out_channels, row.head, norm_layer=norm_layer)
        super().__init__(
            shufflenet_stem(in_chans, small_input, norm_layer),
            stages.sequential(),
            head,
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=row.head,
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=1 if small_input else 4,  # 3x3/2 conv, 3x3/2 max pool
            drop_rate=drop_rate,
        )
        self.width = width
        init_weights(self)


def shufflenet_v2(width: float = 1.0, **kwargs) -> ShuffleNetV2:
    """ShuffleNetV2 at one of the paper's four sizes."""
    return ShuffleNetV2(width, **kwargs)


# Paper: Table 8 (MFLOPs = multiply-adds, top-1 from the error). Measured: models.json rows
# "torchvision.shufflenet_v2_x*" (torchvision 0.29.2, exact trainable params, conv+linear MACs).
# fmt: off
#  suffix  width  paper: MACs top1   torchvision: params  MACs    name
VARIANTS = (
    ("w050", 0.5,  41,  60.3,  1366792,  40.48,  "shufflenet_v2_x0_5"),
    ("w100", 1.0,  146, 69.4,  2278604,  144.91, "shufflenet_v2_x1_0"),
    ("w150", 1.5,  299, 72.6,  3503624,  295.76, "shufflenet_v2_x1_5"),
    ("w200", 2.0,  591, 74.9,  7393996,  583.25, "shufflenet_v2_x2_0"),
)
# fmt: on

for _suffix, _width, _macs, _top1, _params, _ref_macs, _tv_name in VARIANTS:
    register_model(
        name=f"shufflenet_v2_{_suffix}",
        card=ModelCard(
            paper="arXiv:1807.11164",
            params_m=round(_params / 1e6, 1),
            macs_m=_macs,
            top1=_top1,
            ref_params=_params,
            ref_macs_m=_ref_macs,
            ref_source=f"models.json: torchvision.{_tv_name} [measured]",
            note="the paper gives no parameter counts (params_m is torchvision's, rounded); its "
            "MFLOPs are multiply-adds",
            aliases=(_tv_name,),
        ),
    )(partial(shufflenet_v2, width=_width))
