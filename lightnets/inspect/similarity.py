"""How alike two layers' feature maps are: cosine on matched channels and linear CKA.

VGNet (arXiv:2207.10318, §3) observed that adjacent layers produce near-duplicate feature maps. Two
measures make that a number:

- cosine on matched channels: channel c of one map against channel c of the other, averaged over
  channels. It needs equal channel counts and is not invariant to a permutation of channels: it
  asks "is it the same map", as a residual block that changes little would give.
- linear CKA (Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations
  Revisited", ICML 2019, arXiv:1905.00414): positions are examples, channels are features;
  CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred X, Y. It is invariant to
  orthogonal transforms (so to channel permutations) and isotropic scaling, and compares maps with
  different channel counts.

Maps of different spatial sizes are compared after average-pooling the larger to the smaller.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lightnets.errors import ConfigError
from lightnets.inspect.kernels import one_thread


def _as_maps(x: Tensor, name: str) -> Tensor:
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ConfigError(
            f"{name} must be a feature map (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}"
        )
    return x


def _match_size(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.shape[0] != b.shape[0]:
        raise ConfigError(f"feature maps hold different batch sizes: {a.shape[0]} and {b.shape[0]}")
    size = (min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1]))
    return F.adaptive_avg_pool2d(a, size), F.adaptive_avg_pool2d(b, size)


def _positions_by_channels(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])  # (N*H*W, C)


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of two (examples, features) matrices; NaN if either is constant."""
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    # feature-space form: the (n x n) Gram matrices of n positions would not fit in memory
    cross = (y.T @ x).pow(2).sum()
    norm = (x.T @ x).pow(2).sum().sqrt() * (y.T @ y).pow(2).sum().sqrt()
    return float(cross / norm) if norm > 0 else math.nan


def matched_channel_cosine(a: Tensor, b: Tensor) -> float:
    """Mean over channels of cos(a[:, c], b[:, c]); NaN if the channel counts differ."""
    if a.shape[1] != b.shape[1]:
        return math.nan
    xa, xb = _positions_by_channels(a), _positions_by_channels(b)
    num = (xa * xb).sum(0)
    den = xa.norm(dim=0) * xb.norm(dim=0)
    valid = den > 0  # a channel that is zero everywhere (dead ReLU) has no direction
    return float((num[valid] / den[valid]).mean()) if valid.any() else math.nan


@one_thread
def layer_similarity(a: Tensor, b: Tensor) -> dict[str, float]:
    """{"cosine": matched-channel cosine (NaN if C differs), "cka": linear CKA} of two maps."""
    a, b = _match_size(_as_maps(a, "a"), _as_maps(b, "b"))
    return {
        "cosine": matched_channel_cosine(a, b),
        "cka": linear_cka(_positions_by_channels(a), _positions_by_channels(b)),
    }


@one_thread
def similarity_matrices(features: dict[str, Tensor]) -> dict[str, Tensor]:
    """{"cosine", "cka"} -> (L, L) matrices over the maps in `features` (in their order)."""
    maps = [_as_maps(v, k) for k, v in features.items()]
    n = len(maps)
    out = {"cosine": torch.full((n, n), math.nan), "cka": torch.full((n, n), math.nan)}
    for i in range(n):
        for j in range(i, n):
            sim = layer_similarity(maps[i], maps[j])
            for key, value in sim.items():
                out[key][i, j] = out[key][j, i] = value
    return out
