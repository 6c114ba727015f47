"""Primitive layers; each imports only torch. Composites of them live in lightnets.blocks."""

from lightnets.layers.activations import ACTIVATIONS, get_act
from lightnets.layers.attention import SqueezeExcite
from lightnets.layers.conv import ConvNormAct, make_divisible
from lightnets.layers.drop import DropPath
from lightnets.layers.fixed import FixedDepthwiseConv2d, fixed_kernel, gaussian_kernel
from lightnets.layers.mixconv import MixConv2d, split_channels
from lightnets.layers.padding import TfSameConv2d, conv2d, pad_tf_same
from lightnets.layers.separable import GlobalDepthwiseConv2d, SpatiallySeparableConv2d
from lightnets.layers.shuffle import ChannelShuffle, channel_shuffle

__all__ = [
    "ACTIVATIONS",
    "ChannelShuffle",
    "ConvNormAct",
    "DropPath",
    "FixedDepthwiseConv2d",
    "GlobalDepthwiseConv2d",
    "MixConv2d",
    "SpatiallySeparableConv2d",
    "SqueezeExcite",
    "TfSameConv2d",
    "channel_shuffle",
    "conv2d",
    "fixed_kernel",
    "gaussian_kernel",
    "get_act",
    "make_divisible",
    "pad_tf_same",
    "split_channels",
]
