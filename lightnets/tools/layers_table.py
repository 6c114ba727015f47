"""`lightnets layers`: the layer library with the paper each layer comes from."""

from __future__ import annotations

import argparse

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightnets layers", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    rows = [(f"lightnets.{mod}.{name}", paper, what) for name, mod, paper, what in LAYERS]
    header = ("layer", "paper", "what it does")
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|---|---|---|")
        for row in rows:
            print(
                "| " + " | ".join(f"`{row[0]}`" if i == 0 else c for i, c in enumerate(row)) + " |"
            )
    else:
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(2)]
        for row in (header, *rows):
            print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    print(f"\n{ACTIVATION_NOTE}")
    return 0
