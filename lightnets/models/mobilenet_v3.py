"""MobileNetV3-Large and -Small from "Searching for MobileNetV3", Howard et al., arXiv:1905.02244.

Defines the two block tables (Tables 1 and 2, with the paper's explicit expansion sizes), the
`MobileNetV3` model with its "efficient last stage" (§5.1.1: pool the 7x7 map, then a biased 1x1
conv without BN, then the classifier) and the builders mobilenet_v3_large_w100 / _small_w100.

Details the tables leave open, as in the official TF code, timm and torchvision (whose weights
load here): SE reduces to make_divisible(expansion / 4, 8) channels with a ReLU inside and a
hard-sigmoid gate; the stem (16, 3x3, stride 2) uses hard-swish; BN eps 1e-5; dropout 0.2 before
the classifier. Deviation: Table 2 marks SE on Small's last 1x1 conv (96 -> 576); no released
model has it, and neither does this one (the measured 2,542,856 parameters exclude it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from functools import partial

from torch import Tensor, nn

from lightnets.blocks import InvertedResidual
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct, get_act, make_divisible
from lightnets.models._common import BlockSite, LightNet, build_stages, by_width, init_weights
from lightnets.models._timm import register_timm_rules

PAPER = "arXiv:1905.02244"


@dataclass(frozen=True)
class BneckRow:
    """One bneck row of Tables 1-2, in the column names and order of every MBConv table (MixRow);
    the expansion is the paper's explicit "exp size" `mid` rather than a ratio."""

    n: int  # blocks in this row; only the first uses stride s (1 throughout the paper)
    out: int  # output channels (before the width multiplier)
    s: int  # stride of the first block
    mid: int  # expansion size: the block's mid channels
    k: tuple[int, ...]  # depthwise kernel sizes
    _: KW_ONLY
    se: bool = False  # SE on the expanded width
    act: str = "relu"  # "relu" (RE) or "hard_swish" (HS)

    def __post_init__(self):
        if self.n < 1 or self.s not in (1, 2) or any(k % 2 == 0 for k in self.k):
            raise ConfigError(f"bad row {self}")
        get_act(self.act)  # KeyError for an unknown name, at import rather than at build


# Table 1, the bneck rows between the stem (16, HS, s2) and the 1x1 conv to 960.
# fmt: off
#            n  out  s  mid  k
MOBILENET_V3_LARGE = (
    BneckRow(1,  16, 1,  16, (3,), se=False, act="relu"),
    BneckRow(1,  24, 2,  64, (3,), se=False, act="relu"),
    BneckRow(1,  24, 1,  72, (3,), se=False, act="relu"),
    BneckRow(1,  40, 2,  72, (5,), se=True,  act="relu"),
    BneckRow(1,  40, 1, 120, (5,), se=True,  act="relu"),
    BneckRow(1,  40, 1, 120, (5,), se=True,  act="relu"),
    BneckRow(1,  80, 2, 240, (3,), se=False, act="hard_swish"),
    BneckRow(1,  80, 1, 200, (3,), se=False, act="hard_swish"),
    BneckRow(1,  80, 1, 184, (3,), se=False, act="hard_swish"),
    BneckRow(1,  80, 1, 184, (3,), se=False, act="hard_swish"),
    BneckRow(1, 112, 1, 480, (3,), se=True,  act="hard_swish"),
    BneckRow(1, 112, 1, 672, (3,), se=True,  act="hard_swish"),
    BneckRow(1, 160, 2, 672, (5,), se=True,  act="hard_swish"),
    BneckRow(1, 160, 1, 960, (5,), se=True,  act="hard_swish"),
    BneckRow(1, 160, 1, 960, (5,), se=True,  act="hard_swish"),
)
# fmt: on

# Table 2, the bneck rows between the stem (16, HS, s2) and the 1x1 conv to 576.
# fmt: off
#            n  out  s  mid  k
MOBILENET_V3_SMALL = (
    BneckRow(1,  16, 2,  16, (3,), se=True,  act="relu"),
    BneckRow(1,  24, 2,  72, (3,), se=False, act="relu"),
    BneckRow(1,  24, 1,  88, (3,), se=False, act="relu"),
    BneckRow(1,  40, 2,  96, (5,), se=True,  act="hard_swish"),
    BneckRow(1,  40, 1, 240, (5,), se=True,  act="hard_swish"),
    BneckRow(1,  40, 1, 240, (5,), se=True,  act="hard_swish"),
    BneckRow(1,  48, 1, 120, (5,), se=True,  act="hard_swish"),
    BneckRow(1,  48, 1, 144, (5,), se=True,  act="hard_swish"),
    BneckRow(1,  96, 2, 288, (5,), se=True,  act="hard_swish"),
    BneckRow(1,  96, 1, 576, (5,), se=True,  act="hard_swish"),
    BneckRow(1,  96, 1, 576, (5,), se=True,  act="hard_swish"),
)
# fmt: on


def bneck_block(
    row: BneckRow,
    site: BlockSite,
    *,
    width: float,
    se_ratio: float,
    norm_layer: Callable[[int], nn.Module],
    drop_path_rate: float,
) -> InvertedResidual:
    """The bneck block of one table row at one place in the network."""
    mid = make_divisible(row.mid * width)
    return InvertedResidual(
        site.in_channels,
        site.out_channels,
        site.stride,
        kernel_sizes=row.k,
        mid_channels=mid,
        # SE width from the expanded width, rounded to 8 (§5.3; not from the input)
        se_channels=make_divisible(mid * se_ratio) if row.se else 0,
        se_gate="hard_sigmoid",
        se_act=nn.ReLU,
        act_layer=get_act(row.act),
        norm_layer=norm_layer,
        drop_path=site.drop_path(drop_path_rate),
    )


class MobileNetV3(LightNet):
    """MobileNetV3: stem, bneck stages, 1x1 conv stage, pool, 1x1 conv (no BN), classifier.

    (N, in_chans, H, W) -> (N, num_classes); `forward_features` gives (N, last_channels, H/32,
    W/32), and `forward_head` pools *before* its 1x1 conv to `head_channels` (= num_features).

    Args:
        table: rows of `BneckRow`; consecutive rows with the same output width form one stage
            (timm's grouping, so that state-dict indices line up), whose stride is the product
            of its rows' strides.
        width: multiplies every table width, the stem and the last conv (make_divisible(., 8));
            the head conv stays at `head_channels`.
        small_input: stride-1 stem for 16-64 px inputs (CIFAR-style); the stages are unchanged.
        drop_path_rate: stochastic depth of the residual branches, rising linearly with depth.
    """

    def __init__(
        self,
        table: Sequence[BneckRow],
        *,
        last_channels: int,
        head_channels: int,
        width: float = 1.0,
        stem_channels: int = 16,
        se_ratio: float = 0.25,
        in_chans: int = 3,
        num_classes: int = 1000,
        small_input: bool = False,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        if not width > 0:
            raise ConfigError(f"width must be positive, got {width!r}")
        stem_stride = 1 if small_input else 2
        channels = make_divisible(stem_channels * width)
        stem = ConvNormAct(
            in_chans, channels, 3, stem_stride, act_layer=nn.Hardswish, norm_layer=norm_layer
        )
        block = partial(bneck_block, width=width, se_ratio=se_ratio, norm_layer=norm_layer,
                        drop_path_rate=drop_path_rate)  # fmt: skip
        stages = build_stages(table, channels, block, opens_stage=by_width,
                              width=lambda row: make_divisible(row.out * width))  # fmt: skip
        last = make_divisible(last_channels * width)
        conv = ConvNormAct(stages.out_channels, last, act_layer=nn.Hardswish, norm_layer=norm_layer)
        stages.add(nn.Sequential(conv), last)  # the 1x1 conv to 960 (576): its own stage, as timm
        # a biased 1x1 conv on the pooled 1x1 map: a fully connected layer without BN
        head = ConvNormAct(last, head_channels, 1, act_layer=nn.Hardswish, norm_layer=None)
        super().__init__(
            stem,
            stages.sequential(),
            head,
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=head_channels,
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=stem_stride,
            drop_rate=drop_rate,
        )
        init_weights(self)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        # the efficient last stage (§5.1.1): pool first, so the 1280-wide conv runs on 1x1
        x = self.head(self.pool(x)).flatten(1)
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)


_NOTE = "Paper counts multiply-adds like the conv+linear count here. "


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=5.4,
        macs_m=219,
        top1=75.2,
        ref_params=5483032,
        ref_macs_m=216.59,
        ref_source="models.json: mobilenetv3_large_100 [measured] (timm 1.0.31; "
        "torchvision identical)",
        timm_name="mobilenetv3_large_100",
        aliases=("mobilenetv3_large_100", "mobilenet_v3_large"),
        note=_NOTE + "Paper figures: Table 3 (MixConv cites 217M MACs; the conv+linear count is "
        "216.6M, the rest of the paper's 219M is presumably the SE scaling and activations).",
    )
)
def mobilenet_v3_large_w100(**kwargs) -> MobileNetV3:
    """MobileNetV3-Large 1.0 (Table 1); loads timm's mobilenetv3_large_100 weights."""
    return MobileNetV3(MOBILENET_V3_LARGE, last_channels=960, head_channels=1280, **kwargs)


@register_model(
    card=ModelCard(
        paper=PAPER,
        params_m=2.5,
        macs_m=56,
        top1=67.4,
        ref_params=2542856,
        ref_macs_m=56.51,
        ref_source="models.json: mobilenetv3_small_100 [measured] (timm 1.0.31; "
        "torchvision identical)",
        timm_name="mobilenetv3_small_100",
        aliases=("mobilenetv3_small_100", "mobilenet_v3_small"),
        note=_NOTE + "Paper figures: Table 3. Table 2's SE on the last 1x1 conv is left out, as in "
        "every released model.",
    )
)
def mobilenet_v3_small_w100(**kwargs) -> MobileNetV3:
    """MobileNetV3-Small 1.0 (Table 2); loads timm's mobilenetv3_small_100 weights."""
    return MobileNetV3(MOBILENET_V3_SMALL, last_channels=576, head_channels=1024, **kwargs)


def timm_rules(last_stage: int) -> tuple[tuple[str, str], ...]:
    """timm `mobilenetv3_*` keys -> lightnets; `blocks.{last_stage}` is the 1x1 'cn' conv."""
    ir = r"blocks\.(\d+)\.(\d+)\."
    return (
        (r"conv_stem\.(.+)", r"stem.conv.\1"),
        (r"bn1\.(.+)", r"stem.bn.\1"),
        (rf"blocks\.{last_stage}\.0\.conv\.(.+)", rf"stages.{last_stage}.0.conv.\1"),
        (rf"blocks\.{last_stage}\.0\.bn1\.(.+)", rf"stages.{last_stage}.0.bn.\1"),
        # block 0 is timm's 'ds' block: dw (bn1) -> [se] -> pw (bn2), no expansion
        (r"blocks\.0\.0\.conv_dw\.(.+)", r"stages.0.0.dw.conv.convs.0.\1"),
        (r"blocks\.0\.0\.bn1\.(.+)", r"stages.0.0.dw.bn.\1"),
        (r"blocks\.0\.0\.conv_pw\.(.+)", r"stages.0.0.project.conv.convs.0.\1"),
        (r"blocks\.0\.0\.bn2\.(.+)", r"stages.0.0.project.bn.\1"),
        (ir + r"se\.conv_reduce\.(.+)", r"stages.\1.\2.se.reduce.\3"),
        (ir + r"se\.conv_expand\.(.+)", r"stages.\1.\2.se.expand.\3"),
        (ir + r"conv_pw\.(.+)", r"stages.\1.\2.expand.conv.convs.0.\3"),
        (ir + r"bn1\.(.+)", r"stages.\1.\2.expand.bn.\3"),
        (ir + r"conv_dw\.(.+)", r"stages.\1.\2.dw.conv.convs.0.\3"),
        (ir + r"bn2\.(.+)", r"stages.\1.\2.dw.bn.\3"),
        (ir + r"conv_pwl\.(.+)", r"stages.\1.\2.project.conv.convs.0.\3"),
        (ir + r"bn3\.(.+)", r"stages.\1.\2.project.bn.\3"),
        (r"conv_head\.(.+)", r"head.conv.\1"),
        (r"classifier\.(.+)", r"classifier.\1"),
    )


register_timm_rules(["mobilenet_v3_large_w100"], timm_rules(last_stage=6))
register_timm_rules(["mobilenet_v3_small_w100"], timm_rules(last_stage=5))
