"""VGNet from "Efficient CNN Architecture Design Guided by Visualization" (Zhang et al., ICME
2022), arXiv:2207.10318; channel tables and block layout from the official code,
github.com/ffiirree/cv-models.

Defines the size table (1.0 / 1.5 / 2.0 / 2.5 / 5.0 "MP" = million parameters), the `VGNet` model
and the registered variants: VGNetG (fixed Gaussian-blur downsampling) with and without SE, VGNetC
(learned depthwise downsampling) and VGNetF-1.5MP (the half-identity depthwise convs replaced by
fixed edge kernels, or by edge + Gaussian kernels).

Which version of the official code: cv-models changed VGNet after the paper. Commit cd54816
(Dec 2021) has exactly the abstract's trainable parameters (VGNetG-1.0MP 997,358 ~ "0.99M", +SE
1,143,190 ~ "1.14M"), so that is the network built here:
- ReLU, BN *after* the activation (conv -> act -> BN), no dropout before the classifier;
- the last block's 3x3 depthwise conv is shared by 8 channel groups (C/8 kernels).
HEAD 50a81e5 switched to SiLU, dropout 0.2 and a full C-kernel depthwise conv in the last block
(+ 7/8 * 9 * C parameters); `act="silu", head_dw_groups=1, drop_rate=0.2` build that version.

Deviations from the official code:
- the VGNetF kernels: cd54816's `EdgeDetection` / `FixedConv2d` sources are not public any more; we
  use the edge bank of the repo's successor layer (Laplacian 4/8, Sobel x/y, Roberts x/y) and, for
  "edge + Gaussian", 3/4 edge and 1/4 Gaussian (sigma 1) channels, as that layer splits them. Any
  bank gives the same parameter and MAC counts.
- the Gaussian downsampling is +G on every channel; the official filter alternates +G / -G, a sign
  the following linear 1x1 convs absorb.
- `small_input=True` follows the official `thumbnail` option: stem *and* first stage at stride 1
  (total stride 8), where the first downsampling becomes a learned depthwise conv.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

from torch import nn

from lightnets._deprecation import renamed_kwargs
from lightnets.blocks.vg_blocks import (
    DownsamplingBlock,
    HalfIdentityBlock,
    SharedDepthwiseConv2d,
    conv_act_norm,
)
from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError
from lightnets.layers.activations import get_act
from lightnets.layers.fixed import FixedDepthwiseConv2d
from lightnets.models._common import BlockSite, LightNet, StageRow, build_stages, init_weights

PAPER = "arXiv:2207.10318"

# fixed depthwise kernels of VGNetF, tiled over the channels (see the module docstring)
EDGE = ("laplacian4", "laplacian8", "sobel_x", "sobel_y", "roberts_x", "roberts_y")
EDGE_GAUSS = (*EDGE, "gaussian", "gaussian")  # 6 of every 8 channels edge, 2 Gaussian


@dataclass(frozen=True)
class VGSize:
    stem: int
    out: tuple[int, int, int, int]  # output channels of the four stages
    n: tuple[int, int, int, int]  # blocks per stage: one DownsamplingBlock + n-1 HalfIdentityBlocks

    def __post_init__(self):
        if min(self.n) < 1 or any(c % 2 for c in self.out):
            raise ConfigError(f"bad size {self}")


#                 stem  stage outputs           blocks per stage
SIZES = {
    "1_0mp": VGSize(28, (56, 112, 224, 368), (4, 7, 13, 2)),
    "1_5mp": VGSize(32, (64, 128, 256, 512), (3, 7, 14, 2)),
    "2_0mp": VGSize(32, (72, 168, 376, 512), (3, 6, 13, 2)),
    "2_5mp": VGSize(32, (80, 192, 400, 544), (3, 6, 16, 2)),
    "5_0mp": VGSize(32, (88, 216, 456, 856), (4, 7, 15, 5)),
}


@renamed_kwargs(kernels="bank")
class VGNet(LightNet):
    """VGNet: stem 3x3/2 -> 4 x (DownsamplingBlock + HalfIdentityBlocks) -> head -> classifier.

    (N, in_chans, H, W) -> (N, num_classes). The head is the last block of the official stage 4:
    a 3x3 depthwise conv (shared by `head_dw_groups` channel groups, or fixed kernels for VGNetF)
    and a 1x1 conv -> act -> BN.

    Args:
        size: a row of SIZES.
        downsampling: "blur" (VGNetG/F), "dwconv" (VGNetC) or "maxpool".
        bank: "learned" depthwise convs, or the names of fixed kernels (VGNetF).
        se_ratio: SE after every 1x1 conv, width int(C * ratio) rounded to 8 (0.25 for "+SE").
        head_dw_groups: 8 as in cd54816 (the paper); 1 for HEAD's full depthwise conv.
    """

    def __init__(
        self,
        size: VGSize,
        downsampling: str = "blur",
        bank: str | tuple[str, ...] = "learned",
        *,
        se_ratio: float = 0.0,
        head_dw_groups: int = 8,
        act: str = "relu",
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        drop_rate: float = 0.0,
    ):
        act_layer = get_act(act)
        first = 1 if small_input else 2  # stem and first stage; see `small_input` above
        stem = conv_act_norm(in_chans, size.stem, 3, first, act_layer)
        downsample = partial(DownsamplingBlock, se_ratio=se_ratio, act_layer=act_layer)
        half = partial(HalfIdentityBlock, bank=bank, se_ratio=se_ratio, act_layer=act_layer)

        def block(row: StageRow, site: BlockSite) -> nn.Module:
            if site.repeat == 0:
                return downsample(site.in_channels, site.out_channels, site.stride, downsampling)
            return half(site.out_channels)

        rows = [StageRow(n, out, s) for n, out, s in zip(size.n, size.out, (first, 2, 2, 2))]
        stages = build_stages(rows, size.stem, block)
        c = stages.out_channels
        if bank == "learned":
            dw = SharedDepthwiseConv2d(c, head_dw_groups)
        else:  # VGNetF: fixed kernels there too, with a BN as in the half-identity blocks
            dw = nn.Sequential(
                OrderedDict(conv=FixedDepthwiseConv2d(c, bank), bn=nn.BatchNorm2d(c))
            )
        head = nn.Sequential(OrderedDict(dw=dw, pw=conv_act_norm(c, c, 1, 1, act_layer)))
        super().__init__(
            stem,
            stages.sequential(),
            head,
            in_chans=in_chans,
            num_classes=num_classes,
            num_features=c,
            stage_channels=stages.channels,
            stage_strides=stages.strides,
            stem_stride=first,
            drop_rate=drop_rate,
        )
        init_weights(self)


# ----------------------------------------------------------------------------------------------
# Registered variants and their cards.

CD54816 = (
    "Follows cv-models commit cd54816, whose trainable parameters match the paper abstract: ReLU, "
    "BN after the activation, no dropout, last-block depthwise conv shared by 8 channel groups. "
    "cv-models HEAD 50a81e5 uses SiLU, dropout 0.2 and a full depthwise conv there ({head} more "
    "parameters; act='silu', head_dw_groups=1, drop_rate=0.2 build it). "
)
F_NOTE = (
    "Follows cv-models commit cd54816, the only version with VGNetF (HEAD dropped it): ReLU, BN "
    "after the activation, no dropout, fixed kernels + BN in every half-identity block and the "
    "last block. Its fixed-kernel sources are not public; the bank is that of the repo's later "
    "edge layer (Laplacian 4/8, Sobel x/y, Roberts x/y). Fixed kernels are buffers, not "
    "parameters. "
)
MACS = "MACs are conv+linear at 224; the repo's 'FLOPs' are fvcore totals (with BN and pooling). "


@dataclass(frozen=True)
class Variant:
    name: str
    size: str  # key of SIZES
    downsampling: str
    se: bool
    bank: str | tuple[str, ...] = "learned"  # "learned" depthwise convs, or fixed kernel names


#           name                   size     down      se     bank
VARIANTS = (
    Variant("vgnet_c_1_0mp",       "1_0mp", "dwconv", False),
    Variant("vgnet_c_1_5mp",       "1_5mp", "dwconv", False),
    Variant("vgnet_g_1_0mp",       "1_0mp", "blur",   False),
    Variant("vgnet_g_1_0mp_se",    "1_0mp", "blur",   True),
    Variant("vgnet_g_1_5mp",       "1_5mp", "blur",   False),
    Variant("vgnet_g_1_5mp_se",    "1_5mp", "blur",   True),
    Variant("vgnet_g_2_0mp",       "2_0mp", "blur",   False),
    Variant("vgnet_g_2_0mp_se",    "2_0mp", "blur",   True),
    Variant("vgnet_g_2_5mp",       "2_5mp", "blur",   False),
    Variant("vgnet_g_2_5mp_se",    "2_5mp", "blur",   True),
    Variant("vgnet_g_5_0mp",       "5_0mp", "blur",   False),
    Variant("vgnet_g_5_0mp_se",    "5_0mp", "blur",   True),
    Variant("vgnet_f_1_5mp",       "1_5mp", "blur",   False, EDGE),
    Variant("vgnet_f_1_5mp_gauss", "1_5mp", "blur",   False, EDGE_GAUSS),
)  # fmt: skip


@dataclass(frozen=True)
class Reference:
    cvm: str  # the cv-models builder name (an alias too, unless it names another variant here)
    params: int  # trainable parameters of cv-models at commit cd54816
    macs_m: float  # conv+linear MACs at 224 (FlopCounterMode flops / 2)


# models.json rows "cvm@cd54816.<cvm> [measured]", except vgnetc_1_0mp, which cd54816 lacks: its
# HEAD row (1,004,036) less HEAD's wider last depthwise conv (9 * (368 - 46) = 2,898).
#   name                             cv-models name      params     MACs
REFERENCES = {
    "vgnet_c_1_0mp":       Reference("vgnetc_1_0mp",    1_001_138, 141.30),
    "vgnet_c_1_5mp":       Reference("vgnetc_1_5mp",    1_506_344, 187.82),
    "vgnet_g_1_0mp":       Reference("vgnetg_1_0mp",      997_358, 141.30),
    "vgnet_g_1_0mp_se":    Reference("vgnetg_1_0mp_se", 1_143_190, 141.44),
    "vgnet_g_1_5mp":       Reference("vgnetg_1_5mp",    1_502_024, 187.82),
    "vgnet_g_1_5mp_se":    Reference("vgnetg_1_5mp_se", 1_701_680, 188.02),
    "vgnet_g_2_0mp":       Reference("vgnetg_2_0mp",    2_006_380, 300.64),
    "vgnet_g_2_0mp_se":    Reference("vgnetg_2_0mp_se", 2_344_696, 300.97),
    "vgnet_g_2_5mp":       Reference("vgnetg_2_5mp",    2_492_756, 398.94),
    "vgnet_g_2_5mp_se":    Reference("vgnetg_2_5mp_se", 2_922_284, 399.36),
    "vgnet_g_5_0mp":       Reference("vgnetg_5_0mp",    4_990_239, 602.20),
    "vgnet_g_5_0mp_se":    Reference("vgnetg_5_0mp_se", 5_887_455, 603.09),
    "vgnet_f_1_5mp":       Reference("vgnete_1_5mp",    1_485_896, 187.82),  # edge kernels
    "vgnet_f_1_5mp_gauss": Reference("vgnetf_1_5mp",    1_485_896, 187.82),  # edge + Gaussian
}  # fmt: skip

# Paper figures (abstract): (params_m, top1). VGNetF's are given relative to a learnable baseline.
PAPER_FIGURES = {
    "vgnet_g_1_0mp": (0.99, 67.7),
    "vgnet_g_1_0mp_se": (1.14, 69.2),
    "vgnet_f_1_5mp": (None, 64.4),  # "-3.2" vs the learnable baseline
    "vgnet_f_1_5mp_gauss": (None, 66.2),  # "-1.4" vs the same baseline
}
# top-1 of the official repo's results.md: the HEAD (SiLU) version, retrained
REPO_TOP1 = {
    "vgnet_g_1_0mp": 68.128,
    "vgnet_g_1_0mp_se": 70.122,
    "vgnet_g_1_5mp": 70.494,
    "vgnet_g_1_5mp_se": 72.422,
    "vgnet_g_2_0mp": 72.314,
    "vgnet_g_2_0mp_se": 74.324,
    "vgnet_g_2_5mp": 73.74,
    "vgnet_g_2_5mp_se": 75.59,
}


def vgnet(variant: Variant, **kwargs) -> VGNet:
    """Build one row of VARIANTS; kwargs go to VGNet (num_classes, in_chans, small_input, ...)."""
    se_ratio = 0.25 if variant.se else 0.0
    return VGNet(
        SIZES[variant.size], variant.downsampling, variant.bank, se_ratio=se_ratio, **kwargs
    )


def _aliases(variant: Variant) -> tuple[str, ...]:
    """The name without the family underscore (vgnet_g_1_0mp -> vgnetg_1_0mp), and the cv-models
    name where that differs and names no other variant here.

    The two agree except for VGNetF: cd54816 calls the edge model `vgnete_1_5mp` (a second alias
    of vgnet_f_1_5mp) and the edge + Gaussian one `vgnetf_1_5mp`, a name that must mean
    vgnet_f_1_5mp here; the Gaussian variant keeps its cv-models name in the card only.
    """
    short = variant.name.replace("vgnet_", "vgnet", 1)
    taken = {v.name.replace("vgnet_", "vgnet", 1) for v in VARIANTS}
    cvm = REFERENCES[variant.name].cvm
    return (short,) if cvm == short or cvm in taken else (short, cvm)


def _card(variant: Variant) -> ModelCard:
    ref = REFERENCES[variant.name]
    if variant.bank == "learned":
        c = SIZES[variant.size].out[-1]
        note = CD54816.format(head=f"{9 * (c - c // 8):,}")
    else:
        note = F_NOTE
    if ref.cvm not in _aliases(variant):
        note += f"cv-models calls this model {ref.cvm}; here that name is another variant's. "
    if ref.cvm == "vgnetc_1_5mp":
        note += "(HEAD has no vgnetc_1_5mp; the same options apply.) "
    if variant.name in REPO_TOP1:
        note += f"results.md: {REPO_TOP1[variant.name]} top-1 for the retrained SiLU version. "
    if ref.cvm == "vgnetc_1_0mp":
        source = "cvm.vgnetc_1_0mp [measured] (HEAD 50a81e5) - 2,898 for cd54816's last block"
    else:
        source = f"cvm@cd54816.{ref.cvm} [measured], trainable params"
    params_m, top1 = PAPER_FIGURES.get(variant.name, (None, None))
    return ModelCard(
        paper=PAPER,
        params_m=params_m,
        top1=top1,
        ref_params=ref.params,
        ref_macs_m=ref.macs_m,
        ref_source=source,
        min_input=32,
        note=(note + MACS).strip(),
        aliases=_aliases(variant),
    )


for _v in VARIANTS:
    register_model(name=_v.name, card=_card(_v))(partial(vgnet, _v))
