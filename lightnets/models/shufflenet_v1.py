"""ShuffleNet (V1) from "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", Zhang et al., CVPR 2018, arXiv:1707.01083.

Defines `GroupRow` (one column of the paper's Table 1: stage widths for a group count),
`ShuffleNetV1` and the 20 registered builders `shufflenet_v1_g{1,2,3,4,8}_w{050,100,150,200}`.

The network is Table 1: 3x3/2 conv (24) -> 3x3/2 max pool -> stages 2, 3, 4 of 4, 8 and 4
`ShuffleUnitV1`s (the first of each with stride 2) -> global pool -> FC. Bottlenecks are a quarter
of the unit's output width (§3.2), and the first 1x1 of stage 2 is not grouped (§3.3).

Deviations and choices:
- "ShuffleNet s x" scales every stage width by s (§4.1.1); the 24-wide stem is not scaled, as in
  the scratch rebuild whose parameter and MAC counts the cards quote (models.json). The official
  Megvii code instead varies the stem per model (12, 16, 24 or 48).
- At 0.5x and 1.5x, g=2 and g=4 give a bottleneck (width / 4) that is not a multiple of g; it is
  rounded up to the next multiple of g (e.g. 0.5x g=2: 25 -> 26). The paper does not say.
- The classifier has a bias (the Megvii code has none): +1000 parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from lightnets.blocks import ShuffleUnitV1
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct
from lightnets.models._common import BlockSite, LightNet, StageRow, build_stages, init_weights


@dataclass(frozen=True)
class GroupRow:
    groups: int
    channels: tuple[int, int, int]  # outputs of stages 2, 3, 4 at 1x

    def __post_init__(self):
        if self.groups < 1 or len(self.channels) != 3:
            raise ConfigError(f"bad row {self}")
        if any(c % self.groups for c in self.channels):
            raise ConfigError(f"bad row {self}")


# fmt: off
# Table 1 of the paper: output channels per stage for each number of groups g.
#        g   stage2 stage3 stage4
SHUFFLENET_V1 = (
    GroupRow(1, (144,  288,   576)),
    GroupRow(2, (200,  400,   800)),
    GroupRow(3, (240,  480,   960)),
    GroupRow(4, (272,  544,  1088)),
    GroupRow(8, (384,  768,  1536)),
)
# fmt: on
REPEATS = (4, 8, 4)  # units in stages 2, 3, 4 (Table 1); the first of each has stride 2
STEM_CHANNELS = 24
WIDTHS = {"w050": 0.5, "w100": 1.0, "w150": 1.5, "w200": 2.0}


def stage_widths(groups: int, width: float = 1.0) -> list[int]:
    """Table 1 widths for `groups`, times `width`, kept multiples of `groups`."""
    rows = {row.groups: row for row in SHUFFLENET_V1}
    if groups not in rows:
        raise ConfigError(f"groups must be one of {sorted(rows)} (Table 1), got {groups!r}")
    if width <= 0:
        raise ConfigError(f"width must be positive, got {width!r}")
    return [groups * max(1, round(c * width / groups)) for c in rows[groups].channels]


def bottleneck_width(out_channels: int, groups: int) -> int:
    """out / 4 (§3.2), rounded up to a multiple of `groups` so that grouped 1x1 convs split it."""
    return groups * math.ceil(out_channels / 4 / groups)


def shufflenet_stem(
    in_chans: int, small_input: bool, norm_layer: Callable[[int], nn.Module]
) -> nn.Sequential:
    """3x3/2 conv (24) -> 3x3/2 max pool (Table 1; ShuffleNetV2's Table 5 is the same); with
    `small_input`, a stride-1 conv and no pool."""
    return nn.Sequential(
        ConvNormAct(in_chans, STEM_CHANNELS, 3, 1 if small_input else 2, norm_layer=norm_layer),
        nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1),
    )


class ShuffleNetV1(LightNet):
    """ShuffleNet of the paper's Table 1: (N, in_chans, H, W) -> (N, num_classes).

    Args:
        groups: groups of the 1x1 convolutions, one of 1, 2, 3, 4, 8.
        width: the paper's scale factor s ("ShuffleNet s x").
        small_input: stride-1 stem conv and no max pool, for 32-64 px inputs.
    """

    def __init__(
        self,
        groups: int = 3,
        width: float = 1.0,
        *,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_rate: float = 0.0,
        small_input: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        widths = stage_widths(groups, width)

        def block(row: StageRow, site: BlockSite) -> ShuffleUnitV1:
            return ShuffleUnitV1(
                site.in_channels,
                site.out_channels,
                site.stride,
                groups,
                mid_channels=bottleneck_width(site.out_channels, groups),
                group_first=site.index != 0,  # §3.3: stage 2's first 1x1 conv is not grouped
                norm_layer=norm_layer,
            )

        rows = [StageRow(n, out, 2) for n, out in zip(REPEATS, widths)]
        stages = build_stages(rows, STEM_CHANNELS, block)
        super().__init__(
            shufflenet_stem(in_chans, small_input, norm_layer),
            stages.sequential(),
            nn.Identity(),
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=stages.out_channels,
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=1 if small_input else 4,  # 3x3/2 conv, 3x3/2 max pool
            drop_rate=drop_rate,
        )
        self.groups, self.width = groups, width
        init_weights(self)


# Reference figures per (groups, width suffix). Paper: Table 2 quotes one 140 MFLOPs (= MACs)
# budget for all 1x models and their top-1 accuracies, and 524 MFLOPs / 73.7% for 2x (g=3); it
# gives no parameter counts. Rows with measured MACs are models.json's scratch rebuild of Table 1,
# "ShuffleNetV1 <s>x (g=<g>) [measured]" (params in millions to 4 decimals, conv+linear MACs);
# the other params_m are the closed-form count of Table 1 (tests/test_blocks_zoo.py derives it).
# fmt: off
#                  paper: MACs  top1   params_m  measured MACs
REFERENCE = {
    (1, "w050"): (None, None, 0.5348,  43.09),
    (2, "w050"): (None, None, 0.6444,  None),
    (3, "w050"): (None, None, 0.7189,  42.69),
    (4, "w050"): (None, None, 0.7787,  None),
    (8, "w050"): (None, None, 1.0120,  44.35),
    (1, "w100"): (140,  66.4, 1.5319,  143.08),
    (2, "w100"): (140,  67.3, 1.7338,  140.84),
    (3, "w100"): (140,  67.4, 1.8657,  137.46),
    (4, "w100"): (140,  67.2, 1.9683,  134.34),
    (8, "w100"): (140,  67.6, 2.4348,  138.37),
    (1, "w150"): (None, None, 2.9930,  308.10),
    (2, "w150"): (None, None, 3.2723,  None),
    (3, "w150"): (None, None, 3.4422,  292.44),
    (4, "w150"): (None, None, 3.5740,  None),
    (8, "w150"): (None, None, 4.2700,  290.19),
    (1, "w200"): (None, None, 4.9181,  None),
    (2, "w200"): (None, None, 5.2560,  None),
    (3, "w200"): (524,  73.7, 5.4482,  None),
    (4, "w200"): (None, None, 5.5904,  None),
    (8, "w200"): (None, None, 6.5176,  None),
}
# fmt: on


def shufflenet_v1(groups: int = 3, width: float = 1.0, **kwargs) -> ShuffleNetV1:
    """ShuffleNet s x with g groups; the registered names fix (g, s) from the paper's grid."""
    return ShuffleNetV1(groups, width, **kwargs)


def _card(groups: int, suffix: str) -> ModelCard:
    width = WIDTHS[suffix]
    macs, top1, params_m, ref_macs = REFERENCE[groups, suffix]
    notes = ["the paper gives no parameter counts and its MFLOPs are multiply-adds"]
    if ref_macs is not None:
        source = f"models.json: ShuffleNetV1 {width:.1f}x (g={groups}) [measured] (scratch rebuild)"
    else:
        source = None
        notes.append("no measured row: params_m is the closed-form count of Table 1")
    if (groups, suffix) == (3, "w200"):
        notes.append(
            "507.6M conv+linear MACs here vs the paper's 524M (the official code "
            "widens the stem to 48 at 2x)"
        )
    if groups in (2, 4) and width in (0.5, 1.5):
        notes.append(f"bottleneck width rounded up to a multiple of g={groups}")
    return ModelCard(
        paper="arXiv:1707.01083",
        params_m=params_m,
        macs_m=macs,
        top1=top1,
        ref_macs_m=ref_macs,
        ref_source=source,
        note="; ".join(notes),
    )


for _groups in (row.groups for row in SHUFFLENET_V1):
    for _suffix, _width in WIDTHS.items():
        register_model(name=f"shufflenet_v1_g{_groups}_{_suffix}", card=_card(_groups, _suffix))(
            partial(shufflenet_v1, groups=_groups, width=_width)
        )
