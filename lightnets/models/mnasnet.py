"""MnasNet-A1 from "MnasNet: Platform-Aware Neural Architecture Search for Mobile", Tan et al.,
CVPR 2019, arXiv:1807.11626 (Fig. 7), one of MixConv's comparison baselines.

Defines the A1 table, `MnasNet` (the MixNet network class with this table) and `mnasnet_a1`,
known to timm as `semnasnet_100` (timm's and torchvision's `mnasnet_100`/`mnasnet1_0` are B1,
without SE: a different network). SE reduces to a quarter of the block *input* width, as in the
official TF code and timm; the first block (SepConv) has no residual.
"""

from __future__ import annotations

from lightnets.cards import ModelCard, register_model
from lightnets.models._timm import register_timm_rules
from lightnets.models.mixnet import TIMM_RULES, MixNet, MixRow

# fmt: off
# Fig. 7: SepConv k3 (16), MBConv6 k3 x2 (24), MBConv3 k5 SE x3 (40), MBConv6 k3 x4 (80),
# MBConv6 k3 SE x2 (112), MBConv6 k5 SE x3 (160), MBConv6 k3 x1 (320).
#          n  out  s  e  k
MNASNET_A1 = (
    MixRow(1,  16, 1, 1, (3,), pw=(1, 1), se=0.0,  act="relu", skip=False),
    MixRow(2,  24, 2, 6, (3,), pw=(1, 1), se=0.0,  act="relu"),
    MixRow(3,  40, 2, 3, (5,), pw=(1, 1), se=0.25, act="relu"),
    MixRow(4,  80, 2, 6, (3,), pw=(1, 1), se=0.0,  act="relu"),
    MixRow(2, 112, 1, 6, (3,), pw=(1, 1), se=0.25, act="relu"),
    MixRow(3, 160, 2, 6, (5,), pw=(1, 1), se=0.25, act="relu"),
    MixRow(1, 320, 1, 6, (3,), pw=(1, 1), se=0.0,  act="relu"),
)
# fmt: on


class MnasNet(MixNet):
    """MnasNet-A1: a MixNet with single-kernel rows, plain 1x1 convs and ReLU throughout.

    (N, in_chans, H, W) -> (N, num_classes).
    """


@register_model(
    card=ModelCard(
        paper="arXiv:1807.11626", params_m=3.9, macs_m=312, top1=75.2, ref_params=3887038,
        ref_macs_m=311.58, ref_source="timm 1.0.31 semnasnet_100 [measured]",
        timm_name="semnasnet_100", aliases=("semnasnet_100",),
        note="paper MACs (312M; the TF README says 315.2M) count more than convolutions and "
        "linear layers: fvcore's total for timm's semnasnet_100 is 324.09M, of which "
        "conv+linear (ref_macs_m) is 311.58M",
    )
)  # fmt: skip
def mnasnet_a1(width: float = 1.0, depth: float = 1.0, **kwargs) -> MnasNet:
    """MnasNet-A1 (Fig. 7): 3.9M params, 312M MACs, 75.2% top-1; dropout 0.2."""
    kwargs.setdefault("drop_rate", 0.2)
    return MnasNet(MNASNET_A1, stem=32, head=1280, width=width, depth=depth, **kwargs)


register_timm_rules(["mnasnet_a1"], TIMM_RULES)
