"""Channel shuffle from ShuffleNet (Zhang et al., arXiv:1707.01083 §3.1)."""

from __future__ import annotations

from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.layers import _checks


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Reshape channels to (groups, C/groups), transpose, flatten: output channel j*g + i is input
    channel i*(C/g) + j, so every group of the next grouped conv sees every group of this one."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelShuffle(nn.Module):
    """(N, C, H, W) -> (N, C, H, W) with channels interleaved across `groups`."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = _checks.positive("groups", groups)

    def forward(self, x: Tensor) -> Tensor:
        if not _checks.is_tracing() and (x.ndim != 4 or x.shape[1] % self.groups):
            raise ConfigError(
                f"ChannelShuffle({self.groups}) needs (N, C, H, W) with C divisible "
                f"by {self.groups}, got {tuple(x.shape)}"
            )
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
