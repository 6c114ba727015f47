"""`lightnets layers`: the layer library with the paper each layer comes from."""

from __future__ import annotations

import argparse

from lightnets.commands import _flags
from lightnets.tables import Column, render

# (name, module, paper, what it does)
# fmt: off
LAYERS = (
    ("MixConv2d",                "layers", "MixConv arXiv:1907.09595",
     "channel groups, one kernel size each (MDConv); equal/exponential split, TF padding"),
    ("ConvNormAct",              "layers", "-",
     "conv -> BN -> activation with stable child names"),
    ("SpatiallySeparableConv2d", "layers", "Inception-v3 arXiv:1512.00567",
     "k x 1 then 1 x k"),
    ("ChannelShuffle",           "layers", "ShuffleNet arXiv:1707.01083",
     "interleave channel groups"),
    ("GlobalDepthwiseConv2d",    "layers", "MobileFaceNet arXiv:1804.07573",
     "GDC: depthwise conv over the whole feature map"),
    ("SqueezeExcite",            "layers", "SENet arXiv:1709.01507",
     "channel gating, sigmoid/hard-sigmoid"),
    ("FixedDepthwiseConv2d",     "layers", "VGNet arXiv:2207.10318",
     "fixed Gaussian/Sobel/Laplacian/identity/box kernels as buffers"),
    ("DropPath",                 "layers", "Stochastic depth arXiv:1603.09382",
     "drop residual branches"),
    ("DepthwiseSeparableConv2d", "blocks", "MobileNetV1 arXiv:1704.04861",
     "depthwise kxk -> pointwise 1x1, optional SE and residual"),
    ("InvertedResidual",         "blocks", "MobileNetV2 arXiv:1801.04381, MixConv",
     "MBConv: expand -> (mixed) depthwise -> SE -> linear project"),
    ("FireModule",               "blocks", "SqueezeNet arXiv:1602.07360",
     "squeeze 1x1 -> expand 1x1 + 3x3"),
    ("XceptionBlock",            "blocks", "Xception arXiv:1610.02357",
     "separable convs with residual"),
    ("ShuffleUnitV1",            "blocks", "ShuffleNet arXiv:1707.01083",
     "grouped 1x1 -> shuffle -> depthwise -> grouped 1x1"),
    ("ShuffleUnitV2",            "blocks", "ShuffleNetV2 arXiv:1807.11164",
     "channel split -> branch -> shuffle"),
    ("DownsamplingBlock",        "blocks", "VGNet arXiv:2207.10318",
     "blur/dwconv downsampling reusing input channels"),
    ("HalfIdentityBlock",        "blocks", "VGNet arXiv:2207.10318",
     "half the channels pass through, half get a depthwise conv"),
)
# fmt: on
ACTIVATION_NOTE = "activations by name: relu, relu6, swish/silu, hard_swish, hard_sigmoid, prelu"
COLUMNS = (
    Column("layer", "layer", code=True),
    Column("paper", "paper"),
    Column("what", "what it does"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightnets layers", description=__doc__)
    _flags.add_format(parser)
    parser.add_argument("--markdown", action="store_true", help="same as --format markdown")
    args = _flags.parse_args(parser, argv)
    fmt = "markdown" if args.markdown else args.format
    rows = [
        {"layer": f"lightnets.{module}.{name}", "paper": paper, "what": what}
        for name, module, paper, what in LAYERS
    ]
    print(render(rows, COLUMNS, fmt, notes=[ACTIVATION_NOTE], rule=False, json_key="layers"))
    return 0
