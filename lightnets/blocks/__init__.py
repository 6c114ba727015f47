"""Blocks: composites of lightnets.layers that the model families stack."""

from lightnets.blocks.depthwise_separable import DepthwiseSeparableConv2d
from lightnets.blocks.inverted_residual import InvertedResidual

__all__ = [
    "DepthwiseSeparableConv2d",
    "InvertedResidual",
]
