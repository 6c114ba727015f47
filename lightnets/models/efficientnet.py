"""EfficientNet-B0 from "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
Tan & Le, ICML 2019, arXiv:1905.11946 (Table 1), one of MixConv's comparison baselines.

Defines the B0 table, `EfficientNet` (the MixNet network class: same stem, MBConv rows and head)
and the `efficientnet_b0` builder, whose timm weights convert with the MixNet rules. SE reduces to
a quarter of the block *input* width, as in the official TF code and timm. Width scaling rounds
the stem, every row and the 1280-wide head to multiples of 8 (TF `round_filters`).
"""

from __future__ import annotations

from lightnets.cards import ModelCard, register_model
from lightnets.layers import make_divisible
from lightnets.models._timm import register_timm_rules
from lightnets.models.mixnet import TIMM_RULES, MixNet, MixRow

# fmt: off
# Table 1: MBConv1 k3 (16), MBConv6 k3 (24), k5 (40), k3 (80), k5 (112), k5 (192), k3 (320).
#          n  out  s  e  k
EFFICIENTNET_B0 = (
    MixRow(1,  16, 1, 1, (3,), pw=(1, 1), se=0.25, act="swish"),
    MixRow(2,  24, 2, 6, (3,), pw=(1, 1), se=0.25, act="swish"),
    MixRow(2,  40, 2, 6, (5,), pw=(1, 1), se=0.25, act="swish"),
    MixRow(3,  80, 2, 6, (3,), pw=(1, 1), se=0.25, act="swish"),
    MixRow(3, 112, 1, 6, (5,), pw=(1, 1), se=0.25, act="swish"),
    MixRow(4, 192, 2, 6, (5,), pw=(1, 1), se=0.25, act="swish"),
    MixRow(1, 320, 1, 6, (3,), pw=(1, 1), se=0.25, act="swish"),
)
# fmt: on


class EfficientNet(MixNet):
    """EfficientNet: a MixNet whose rows use one kernel size, plain 1x1 convs and swish throughout.

    (N, in_chans, H, W) -> (N, num_classes).
    """


@register_model(
    card=ModelCard(
        paper="arXiv:1905.11946", params_m=5.3, macs_m=390, top1=77.1, ref_params=5288548,
        ref_macs_m=385.81, ref_source="timm 1.0.31 efficientnet_b0 [measured] (= torchvision's)",
        timm_name="efficientnet_b0",
        note="paper MACs (390M) count more than convolutions and linear layers: fvcore's total "
        "for timm's efficientnet_b0 is 399.35M, of which conv+linear (ref_macs_m) is 385.81M; "
        "top-1 77.1 is the final paper's (arXiv v1 and MixConv Table 2 cite 76.3)",
    )
)  # fmt: skip
def efficientnet_b0(width: float = 1.0, depth: float = 1.0, **kwargs) -> EfficientNet:
    """EfficientNet-B0 (Table 1): 5.3M params, 390M MACs, 77.1% top-1; dropout 0.2."""
    kwargs.setdefault("drop_rate", 0.2)
    return EfficientNet(EFFICIENTNET_B0, stem=32, head=make_divisible(1280 * width), width=width,
                        depth=depth, act="swish", **kwargs)  # fmt: skip


register_timm_rules(["efficientnet_b0"], TIMM_RULES)
