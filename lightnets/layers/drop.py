"""Stochastic depth (Huang et al., arXiv:1603.09382): drop a residual branch per sample."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightnets.errors import ConfigError


class DropPath(nn.Module):
    """In training, zero the branch for a random `p` share of samples; scale the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"drop-path rate must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        return x * keep.bernoulli_(1.0 - self.p) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
