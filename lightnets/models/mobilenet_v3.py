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
from dataclasses import dataclass
from itertools import groupby

from torch import Tensor, nn

from lightnets.blocks import InvertedResidual
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct, get_act, make_divisible
from lightnets.models._common import LightNet, init_weights
from lightnets.models._timm import register_timm_rules
from lightnets.registry import ModelCard, register_model

PAPER = "arXiv:1905.02244"


@dataclass(frozen=True)
class BneckRow:
    k: tuple[int, ...]  # depthwise kernel
    exp: int  # expansion size: the block's mid channels
    out: int
    se: bool
    act: str  # "relu" (RE) or "hard_swish" (HS)
    s: int

    def __post_init__(self):
        if self.s not in (1, 2) or any(k % 2 == 0 for k in self.k):
            raise ConfigError(f"bad row {self}")
        get_act(self.act)  # KeyError for an unknown name, at import rather than at build


# Table 1, the bneck rows between the stem (16, HS, s2) and the 1x1 conv to 960.
# fmt: off
#             k     exp   out  se     act           s
MOBILENET_V3_LARGE = (
    BneckRow((3,),   16,   16,  False, "relu",       1),
    BneckRow((3,),   64,   24,  False, "relu",       2),
    BneckRow((3,),   72,   24,  False, "relu",       1),
    BneckRow((5,),   72,   40,  True,  "relu",       2),
    BneckRow((5,),  120,   40,  True,  "relu",       1),
    BneckRow((5,),  120,   40,  True,  "relu",       1),
    BneckRow((3,),  240,   80,  False, "hard_swish", 2),
    BneckRow((3,),  200,   80,  False, "hard_swish", 1),
    BneckRow((3,),  184,   80,  False, "hard_swish", 1),
    BneckRow((3,),  184,   80,  False, "hard_swish", 1),
    BneckRow((3,),  480,  112,  True,  "hard_swish", 1),
    BneckRow((3,),  672,  112,  True,  "hard_swish", 1),
    BneckRow((5,),  672,  160,  True,  "hard_swish", 2),
    BneckRow((5,),  960,  160,  True,  "hard_swish", 1),
    BneckRow((5,),  960,  160,  True,  "hard_swish", 1),
)
# fmt: on

# Table 2, the bneck rows between the stem (16, HS, s2) and the 1x1 conv to 576.
# fmt: off
#             k     exp   out  se     act           s
MOBILENET_V3_SMALL = (
    BneckRow((3,),   16,   16,  True,  "relu",       2),
    BneckRow((3,),   72,   24,  False, "relu",       2),
    BneckRow((3,),   88,   24,  False, "relu",       1),
    BneckRow((5,),   96,   40,  True,  "hard_swish", 2),
    BneckRow((5,),  240,   40,  True,  "hard_swish", 1),
    BneckRow((5,),  240,   40,  True,  "hard_swish", 1),
    BneckRow((5,),  120,   48,  True,  "hard_swish", 1),
    BneckRow((5,),  144,   48,  True,  "hard_swish", 1),
    BneckRow((5,),  288,   96,  True,  "hard_swish", 2),
    BneckRow((5,),  576,   96,  True,  "hard_swish", 1),
    BneckRow((5,),  576,   96,  True,  "hard_swish", 1),
)
# fmt: on


class MobileNetV3(LightNet):
    """MobileNetV3: stem, bneck stages, 1x1 conv stage, pool, 1x1 conv (no BN), classifier.

    (N, in_chans, H, W) -> (N, num_classes); `forward_features` gives (N, last_channels, H/32,
    W/32), and `forward_head` pools *before* its 1x1 conv to `head_channels` (= num_features).

    Args:
        table: rows of `BneckRow`; consecutive rows with the same output width form one stage
            (timm's grouping, so that state-dict indices line up).
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
        stages, stage_channels, stage_strides = [], [], []
        index = 0
        for _, group in groupby(table, key=lambda row: row.out):
            rows = list(group)
            blocks = []
            for row in rows:
                mid, out = make_divisible(row.exp * width), make_divisible(row.out * width)
                blocks.append(
                    InvertedResidual(
                        channels,
                        out,
                        row.s,
                        kernels=row.k,
                        mid_channels=mid,
                        # SE width from the expanded width, rounded to 8 (§5.3; not from the input)
                        se_channels=make_divisible(mid * se_ratio) if row.se else 0,
                        se_gate="hard_sigmoid",
                        se_act=nn.ReLU,
                        act_layer=get_act(row.act),
                        norm_layer=norm_layer,
                        drop_path=drop_path_rate * index / len(table),
                    )
                )
                channels, index = out, index + 1
            stages.append(nn.Sequential(*blocks))
            stage_channels.append(channels)
            stage_strides.append(rows[0].s)
        last = make_divisible(last_channels * width)
        stages.append(
            nn.Sequential(
                ConvNormAct(channels, last, 1, act_layer=nn.Hardswish, norm_layer=norm_layer)
            )
        )
        stage_channels.append(last)
        stage_strides.append(1)
        # a biased 1x1 conv on the pooled 1x1 map: a fully connected layer without BN
        head = ConvNormAct(last, head_channels, 1, act_layer=nn.Hardswish, norm_layer=None)
        num_stride2 = (stem_stride == 2) + sum(row.s == 2 for row in table)
        super().__init__(
            stem,
            nn.Sequential(*stages),
            head,
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=head_channels,
            stage_channels=stage_channels,
            stage_strides=stage_strides,
            stem_stride=stem_stride,
            drop_rate=drop_rate,
            min_input=2**num_stride2,
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
