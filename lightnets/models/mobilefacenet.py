"""MobileFaceNet from "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on
Mobile Devices", Chen et al., CCBR 2018, arXiv:1804.07573.

Defines the paper's Table 1 (rows of MobileNetV2's `IRRow`), `MobileFaceNet` and the builder
`mobilefacenet`. The output is a 128-d face embedding, not class scores: there is no classifier
(`card.embedding_dim = 128`); compare embeddings by cosine similarity, or train with a margin loss
(ArcFace) on top, or add a classifier with `reset_classifier(n)`.

Table 1 at 112x112: 3x3/2 conv 64 -> 3x3 depthwise conv 64 -> MobileNetV2 bottlenecks
(t, c, n, s) -> 1x1 conv 512 -> linear GDConv 7x7 (global depthwise conv, §2.2) -> linear 1x1 conv
128. PReLU everywhere except the linear layers (§3.1); BN after every conv. The final "linear 1x1
conv" acts on a 1x1 map, so it is a bias-free Linear followed by BatchNorm1d (as in the reference
implementations); with that BN the count is 1,003,136 parameters (models.json scratch rebuild:
1.0031M), of which the conv weights alone are 0.976M (the paper rounds to 0.99M).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

from torch import nn

from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers import ConvNormAct, GlobalDepthwiseConv2d
from lightnets.models._common import LightNet, build_stages, by_stride, init_weights
from lightnets.models.mobilenet_v2 import IRRow, ir_block

IMG_SIZE = 112  # fixed: the GDConv kernel covers the 7x7 map of a 112x112 face crop
EMBEDDING_DIM = 128


# fmt: off
# Table 1 of the paper (columns t, c, n, s: MobileNetV2 bottlenecks, so MobileNetV2's row type);
# one stage per row that halves the resolution.
#         n  out  s  e
MOBILEFACENET = (
    IRRow(5,  64, 2, 2),   # 56 -> 28
    IRRow(1, 128, 2, 4),   # 28 -> 14
    IRRow(6, 128, 1, 2),
    IRRow(1, 128, 2, 4),   # 14 -> 7
    IRRow(2, 128, 1, 2),
)
# fmt: on
STEM_CHANNELS = 64
HEAD_CHANNELS = 512


class MobileFaceNet(LightNet):
    """MobileFaceNet: (N, in_chans, 112, 112) -> (N, 128) embeddings (unnormalised).

    Args:
        embedding_dim: width of the final linear layer (128 in the paper).
        num_classes: 0 (default) returns embeddings; > 0 adds a linear classifier on top.
    """

    def __init__(
        self,
        *,
        in_chans: int = 3,
        embedding_dim: int = EMBEDDING_DIM,
        num_classes: int = 0,
        small_input: bool = False,
        act_layer: type[nn.Module] = nn.PReLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ):
        if small_input:
            raise ConfigError(
                "small_input=True is not supported by MobileFaceNet: its GDConv head needs the "
                f"7x7 map of a {IMG_SIZE}x{IMG_SIZE} input"
            )
        stem_stride = 2
        stem = nn.Sequential(
            ConvNormAct(
                in_chans, STEM_CHANNELS, 3, stem_stride, act_layer=act_layer, norm_layer=norm_layer
            ),
            ConvNormAct(
                STEM_CHANNELS,
                STEM_CHANNELS,
                3,
                groups=STEM_CHANNELS,
                act_layer=act_layer,
                norm_layer=norm_layer,
            ),
        )

        block = partial(ir_block, act_layer=act_layer, norm_layer=norm_layer)
        stages = build_stages(MOBILEFACENET, STEM_CHANNELS, block, opens_stage=by_stride)
        gdc_size = IMG_SIZE // (stem_stride * math.prod(stages.strides))  # 7
        head = nn.Sequential(
            OrderedDict(
                conv=ConvNormAct(
                    stages.out_channels, HEAD_CHANNELS, act_layer=act_layer, norm_layer=norm_layer
                ),
                gdc=GlobalDepthwiseConv2d(HEAD_CHANNELS, gdc_size),  # linear, -> (N, 512)
                embedding=nn.Linear(HEAD_CHANNELS, embedding_dim, bias=False),  # linear 1x1 conv
                bn=nn.BatchNorm1d(embedding_dim),
            )
        )
        super().__init__(
            stem,
            stages.sequential(),
            head,
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=embedding_dim,
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=stem_stride,
            min_input=IMG_SIZE,  # the GDConv kernel covers the whole last map
            global_pool=False,
        )
        init_weights(self)


@register_model(
    card=ModelCard(
        paper="arXiv:1804.07573",
        params_m=0.99,
        macs_m=221,
        img_size=IMG_SIZE,
        min_input=IMG_SIZE,
        embedding_dim=EMBEDDING_DIM,
        ref_params=1003136,
        ref_macs_m=220.97,
        ref_source="models.json: MobileFaceNet [measured] (scratch rebuild of Table 1, BN+PReLU)",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=1.0,
        note="face-verification embedding (128-d, no classifier, fixed 112x112 aligned face "
        "input); no ImageNet result (LFW 99.55%, MegaFace 92.59%); the paper's 0.99M counts conv "
        "weights only (0.976M here), ref_params adds BN and PReLU",
    )
)
def mobilefacenet(**kwargs) -> MobileFaceNet:
    """MobileFaceNet of the paper's Table 1, returning 128-d embeddings."""
    return MobileFaceNet(**kwargs)
