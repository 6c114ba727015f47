"""Fire module from "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model
size", Iandola et al., arXiv:1602.07360, §3.2 and Fig. 1."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightnets.layers import _checks
from lightnets.layers.conv import ConvNormAct


class FireModule(nn.Module):
    """squeeze 1x1 -> ReLU, then expand 1x1 -> ReLU and expand 3x3 -> ReLU side by side, joined.

    (N, C_in, H, W) -> (N, expand1x1 + expand3x3, H, W). All convolutions are biased and there is
    no normalization (the paper predates BN in this design). The 3x3 expand is padded by 1 so that
    both expand outputs have the same size (§3.3).
    """

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("squeeze", squeeze),
            ("expand1x1", expand1x1),
            ("expand3x3", expand3x3),
        ):
            _checks.positive(name, value)
        self.out_channels = expand1x1 + expand3x3
        self.squeeze = ConvNormAct(in_channels, squeeze, 1, norm_layer=None)
        self.expand1x1 = ConvNormAct(squeeze, expand1x1, 1, norm_layer=None)
        self.expand3x3 = ConvNormAct(squeeze, expand3x3, 3, norm_layer=None)

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], dim=1)
