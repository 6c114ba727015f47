"""SqueezeNet 1.0 and 1.1 from "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size", Iandola et al., arXiv:1602.07360 (1.1: the official forresti/SqueezeNet repo).

Defines `SqueezeNet` and the builders `squeezenet_1_0` / `squeezenet_1_1`, aliased to torchvision's
`squeezenet1_0` / `squeezenet1_1`, layer for layer as torchvision (1,248,424 / 1,235,496 params).

Geometry: the stem conv is unpadded and the max pools round up (Caffe), so maps are a little
smaller than input / stride (224 -> 54, 27, 13 for 1.0): `feature_info` gives the nominal strides.

The classifier is the paper's conv10: dropout (50%, §3.3) -> 1x1 conv to the classes -> ReLU ->
global average pool, run on the feature map as in the paper. `forward_head(pre_logits=True)` and
`num_classes=0` give the globally pooled 512-channel fire9 output instead.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn

from lightnets.blocks import FireModule
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.models._common import LightNet, init_weights

NUM_FEATURES = 512  # fire9's output, the input of conv10


def caffe_pool() -> nn.MaxPool2d:
    # Caffe rounds pooled sizes up; ceil_mode reproduces it (and torchvision's map sizes)
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def squeezenet_1_0_stages() -> nn.Sequential:
    """Paper Table 1: fire2-4, maxpool, fire5-8, maxpool, fire9 (stages split at the pools)."""
    return nn.Sequential(
        nn.Sequential(
            caffe_pool(),  # maxpool/2
            FireModule(96, 16, 64, 64),  # fire2
            FireModule(128, 16, 64, 64),  # fire3
            FireModule(128, 32, 128, 128),  # fire4
        ),
        nn.Sequential(
            caffe_pool(),  # maxpool/2
            FireModule(256, 32, 128, 128),  # fire5
            FireModule(256, 48, 192, 192),  # fire6
            FireModule(384, 48, 192, 192),  # fire7
            FireModule(384, 64, 256, 256),  # fire8
        ),
        nn.Sequential(
            caffe_pool(),  # maxpool/2
            FireModule(512, 64, 256, 256),  # fire9
        ),
    )


def squeezenet_1_1_stages() -> nn.Sequential:
    """SqueezeNet 1.1 (official repo): 3x3/64 stem, pools moved earlier, same fire modules."""
    return nn.Sequential(
        nn.Sequential(
            caffe_pool(),
            FireModule(64, 16, 64, 64),  # fire2
            FireModule(128, 16, 64, 64),  # fire3
        ),
        nn.Sequential(
            caffe_pool(),
            FireModule(128, 32, 128, 128),  # fire4
            FireModule(256, 32, 128, 128),  # fire5
        ),
        nn.Sequential(
            caffe_pool(),
            FireModule(256, 48, 192, 192),  # fire6
            FireModule(384, 48, 192, 192),  # fire7
            FireModule(384, 64, 256, 256),  # fire8
            FireModule(512, 64, 256, 256),  # fire9
        ),
    )


# version -> (stem channels, stem kernel, stages)
VERSIONS = {
    "1_0": (96, 7, squeezenet_1_0_stages),
    "1_1": (64, 3, squeezenet_1_1_stages),
}
POOLS = 3  # max pools, one opening each stage


def min_input(version: str) -> int:
    """Smallest side the unpadded k x k / 2 stem and the ceil-mode 3x3/2 pools take (21, 17).

    A ceil-mode 3x3/2 pool needs 2 pixels to give 1 and 2o to give o, so the stem must leave
    2 ** POOLS pixels; an unpadded stride-2 conv gives (H - k) // 2 + 1 of H.
    """
    kernel = VERSIONS[version][1]
    return 2 * (2**POOLS - 1) + kernel


def pool_stride(stage: nn.Sequential) -> int:
    return math.prod(m.stride for m in stage if isinstance(m, nn.MaxPool2d))


class SqueezeNet(LightNet):
    """SqueezeNet: (N, in_chans, H, W) -> (N, num_classes).

    Args:
        version: "1_0" (the paper) or "1_1" (2.4x less computation, same accuracy).
        drop_rate: dropout before conv10 (the paper: 50% after fire9).
        small_input: stride-1, padded stem conv for 32-64 px inputs.
    """

    def __init__(
        self,
        version: str = "1_0",
        *,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_rate: float = 0.5,
        small_input: bool = False,
    ):
        if version not in VERSIONS:
            raise ConfigError(f"version must be one of {sorted(VERSIONS)}, got {version!r}")
        stem_channels, k, make_stages = VERSIONS[version]
        stages = make_stages()
        stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(
                    in_chans,
                    stem_channels,
                    k,
                    1 if small_input else 2,
                    padding=k // 2 if small_input else 0,
                ),
                act=nn.ReLU(inplace=True),
            )
        )
        super().__init__(
            stem,
            stages,
            nn.Identity(),
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=NUM_FEATURES,
            stage_channels=[stage[-1].out_channels for stage in stages],
            stage_strides=[pool_stride(stage) for stage in stages],
            stem_stride=1 if small_input else 2,
            drop_rate=drop_rate,
            min_input=None if small_input else min_input(version),  # None: the total stride
        )
        self.version = version
        init_weights(self)
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """conv10: a fresh 1x1 conv to `num_classes` (0: none, pooled features out)."""
        self.num_classes = num_classes
        if not num_classes:
            self.classifier = nn.Identity()
            return
        self.classifier = nn.Conv2d(self.num_features, num_classes, 1)
        # conv10 starts from N(0, 0.01) and zero bias: the paper's Caffe solver
        # (forresti/SqueezeNet train_val.prototxt, conv10 weight_filler gaussian std 0.01),
        # as torchvision's final_conv
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head(x)
        if pre_logits or not self.num_classes:
            return self.pool(x).flatten(1)
        x = F.relu(self.classifier(self.dropout(x)))
        return self.pool(x).flatten(1)


SQUEEZENET_NOTE = (
    "the paper gives no MACs; the Caffe reference trained on 227x227 crops; classifier is the "
    "paper's conv10 (1x1 conv + ReLU before the global pool)"
)


@register_model(
    card=ModelCard(
        paper="arXiv:1602.07360",
        params_m=1.25,
        top1=57.5,
        min_input=min_input("1_0"),
        ref_params=1248424,
        ref_macs_m=818.92,
        ref_source="models.json: torchvision.squeezenet1_0 [measured]",
        note=SQUEEZENET_NOTE,
        aliases=("squeezenet1_0",),
    )
)
def squeezenet_1_0(**kwargs) -> SqueezeNet:
    """SqueezeNet 1.0: the paper's Table 1."""
    return SqueezeNet("1_0", **kwargs)


@register_model(
    card=ModelCard(
        paper="arXiv:1602.07360",
        params_m=1.24,
        top1=57.5,
        min_input=min_input("1_1"),
        ref_params=1235496,
        ref_macs_m=349.15,
        ref_source="models.json: torchvision.squeezenet1_1 [measured]",
        note=SQUEEZENET_NOTE + "; 1.1 is from the official repo, not the paper (same accuracy, "
        "2.4x less computation)",
        aliases=("squeezenet1_1",),
    )
)
def squeezenet_1_1(**kwargs) -> SqueezeNet:
    """SqueezeNet 1.1 (forresti/SqueezeNet): 3x3 stem, earlier pooling."""
    return SqueezeNet("1_1", **kwargs)
