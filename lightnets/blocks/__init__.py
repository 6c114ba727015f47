"""Blocks: composites of lightnets.layers that the model families stack."""

from lightnets.blocks.depthwise_separable import DepthwiseSeparableConv2d
from lightnets.blocks.inverted_residual import InvertedResidual
from lightnets.blocks.vg_blocks import DownsamplingBlock, HalfIdentityBlock, SharedDepthwiseConv2d

__all__ = [
    "DepthwiseSeparableConv2d",
    "DownsamplingBlock",
    "HalfIdentityBlock",
    "InvertedResidual",
    "SharedDepthwiseConv2d",
]
