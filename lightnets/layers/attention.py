"""Squeeze-and-Excitation (Hu et al., arXiv:1709.01507) as in MnasNet, MixNet and MobileNetV3."""

from __future__ import annotations

from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.layers import _checks
from lightnets.layers.activations import get_act, make_act

GATES = {"sigmoid": nn.Sigmoid, "hard_sigmoid": nn.Hardsigmoid}


class SqueezeExcite(nn.Module):
    """Channel gating: global pool -> 1x1 reduce -> act -> 1x1 expand -> gate -> scale the input.

    (N, C, H, W) -> (N, C, H, W). The reduced width is given directly (`reduced_channels`), because
    papers compute it differently: from the block input (MixNet, EfficientNet) or from the expanded
    width rounded to 8 (MobileNetV3).
    """

    def __init__(
        self, channels: int, reduced_channels: int, act_layer=nn.ReLU, gate: str = "sigmoid"
    ):
        super().__init__()
        _checks.positive("channels", channels)
        _checks.positive("reduced_channels", reduced_channels)
        if gate not in GATES:
            raise ConfigError(f"gate must be one of {tuple(GATES)}, got {gate!r}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act = make_act(get_act(act_layer), reduced_channels)
        self.expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)
        self.gate = GATES[gate]()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
