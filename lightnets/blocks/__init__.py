"""Blocks: composites of lightnets.layers that the model families stack."""

from lightnets.blocks.depthwise_separable import DepthwiseSeparableConv2d
from lightnets.blocks.fire import FireModule
from lightnets.blocks.inverted_residual import InvertedResidual
from lightnets.blocks.shuffle_unit import ShuffleUnitV1, ShuffleUnitV2
from lightnets.blocks.vg_blocks import DownsamplingBlock, HalfIdentityBlock, SharedDepthwiseConv2d
from lightnets.blocks.xception_block import XceptionBlock

__all__ = [
    "DepthwiseSeparableConv2d",
    "DownsamplingBlock",
    "FireModule",
    "HalfIdentityBlock",
    "InvertedResidual",
    "SharedDepthwiseConv2d",
    "ShuffleUnitV1",
    "ShuffleUnitV2",
    "XceptionBlock",
]
