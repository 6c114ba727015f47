"""A network of the search space as the parts its latency is predicted from: the stem, every
MBConv block, and the head (1x1 conv, pool, classifier), each with the input size it sees.

A `Part` is plain data (hashable, with a text `key` for JSON) and builds itself as a standalone
module with the same constructors MixNet uses (`mbconv_block`, ConvNormAct), so a part timed alone
is the module that runs inside the network. `network_parts` walks a table with the models' own
stage loop (`build_stages`) and needs no network built: a search predicts thousands of tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from lightnets.layers import ConvNormAct, get_act, make_divisible
from lightnets.models._common import BlockSite, build_stages, by_width
from lightnets.models.mixnet import MixNet, MixRow, mbconv_block
from lightnets.search.space import HEAD, STEM, small_input_for


@dataclass(frozen=True)
class Part:
    """One separately timed piece of a network: kind "stem", "block" or "head".

    `size` is the input's (H, W); `skip` whether the block adds its residual; `classes` the
    head's classifier outputs. The fields are what the latency of the piece depends on.
    """

    kind: str
    in_channels: int
    out_channels: int
    stride: int
    size: tuple[int, int]
    e: int = 1
    k: tuple[int, ...] = (3,)
    pw: tuple[int, int] = (1, 1)
    se: float = 0.0
    act: str = "relu"
    skip: bool = False
    classes: int = 0

    @property
    def key(self) -> str:
        """E.g. "block 24>40 s2 e6 k3.5.7 pw1.1 se0.5 swish skip0 56x56"."""
        size = f"{self.size[0]}x{self.size[1]}"
        head = f"{self.kind} {self.in_channels}>{self.out_channels} s{self.stride}"
        if self.kind != "block":
            extra = f" classes{self.classes}" if self.kind == "head" else ""
            return f"{head} {self.act}{extra} {size}"
        k, pw = ".".join(map(str, self.k)), ".".join(map(str, self.pw))
        return f"{head} e{self.e} k{k} pw{pw} se{self.se:g} {self.act} skip{int(self.skip)} {size}"

    @property
    def out_size(self) -> tuple[int, int]:
        """The output's (H, W): 'same' padding rounds up; the head pools to one value."""
        if self.kind == "head":
            return (1, 1)
        return tuple(math.ceil(s / self.stride) for s in self.size)

    def values(self) -> int:
        """Activation values one call reads or writes (batch 1): input, output and, in a
        block, the expanded tensor at both resolutions; the head's conv output before the pool."""
        (h, w), (ho, wo) = self.size, self.out_size
        if self.kind == "head":
            return (self.in_channels + self.out_channels) * h * w + self.classes
        mid = make_divisible(self.in_channels * self.e) if self.kind == "block" else 0
        return (self.in_channels + mid) * h * w + (mid + self.out_channels) * ho * wo

    def example(self, batch: int = 1) -> Tensor:
        """A random input of this part's shape."""
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch, self.in_channels, *self.size, generator=generator)

    def build(self) -> nn.Module:
        """This part as a module in eval mode, built as MixNet builds it (random weights)."""
        act = get_act(self.act)
        if self.kind == "stem":
            module = ConvNormAct(self.in_channels, self.out_channels, 3, self.stride, act_layer=act)
        elif self.kind == "head":
            module = nn.Sequential(
                ConvNormAct(self.in_channels, self.out_channels, act_layer=act),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(1),  # LightNet.forward_head: pool, flatten, (dropout), classifier
                nn.Linear(self.out_channels, self.classes),
            )
        else:
            row = MixRow(
                1,
                self.out_channels,
                self.stride,
                self.e,
                self.k,
                pw=self.pw,
                se=self.se,
                act=self.act,
                skip=self.skip,
            )
            site = BlockSite(self.in_channels, self.out_channels, self.stride, 0, 0, 1, 0)
            module = mbconv_block(
                row, site, norm_layer=nn.BatchNorm2d, padding="same", drop_path_rate=0.0
            )
        return module.eval()


def network_parts(
    table,
    img_size: int,
    *,
    num_classes: int = 1000,
    small_input: bool | None = None,
    in_chans: int = 3,
    act: str = "relu",
) -> list[Part]:
    """The parts of `space.build_network(table, ...)` in forward order: stem, blocks, head."""
    small_input = small_input_for(img_size) if small_input is None else small_input
    stem_stride = 1 if small_input else 2
    stem = Part("stem", in_chans, STEM, stem_stride, (img_size, img_size), act=act)
    parts, size = [stem], stem.out_size
    rows = [replace(r, out=make_divisible(r.out)) for r in table]  # as MixNet rounds widths

    def record(row: MixRow, site: BlockSite) -> nn.Module:
        nonlocal size
        skip = row.skip and site.stride == 1 and site.in_channels == site.out_channels
        part = Part(
            "block",
            site.in_channels,
            site.out_channels,
            site.stride,
            size,
            row.e,
            row.k,
            row.pw,
            row.se,
            row.act,
            skip,
        )
        parts.append(part)
        size = part.out_size
        return nn.Identity()  # build_stages wants a module; only the walk is used here

    stages = build_stages(rows, STEM, record, opens_stage=by_width)
    parts.append(Part("head", stages.out_channels, HEAD, 1, size, act=act, classes=num_classes))
    return parts


def network_modules(model: MixNet) -> list[nn.Module]:
    """The built network cut where `network_parts` cuts it: stem, each block, and the head with
    pool and classifier (dropout, an identity in eval, left out)."""
    blocks = [block for stage in model.stages for block in stage]
    head = nn.Sequential(model.head, model.pool, nn.Flatten(1), model.classifier)
    return [model.stem, *blocks, head]
