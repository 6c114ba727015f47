"""What every lightnets model shares: the stage builder, the outer structure, input checks, init
and backbone mode.

A model is `stem -> stages -> head -> pool -> dropout -> classifier`. Families turn their table
into stages with `build_stages` (one loop for every family: rows -> blocks -> stages, with each
stage's width and stride recorded as it goes), build the stem and head, and pass them to
`LightNet.__init__`, which derives the feature reductions and the minimum input from the strides.
Everything else (forward_features / forward_head, `reset_classifier`, `features_only`, input
validation) lives here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from lightnets.errors import ConfigError
from lightnets.layers._checks import is_tracing


class LightNet(nn.Module):
    """Base for zoo models: (N, in_chans, H, W) -> (N, num_classes); pooled features if 0 classes.

    Args:
        stem, stages, head: modules; `stages` is an nn.Sequential of per-stage nn.Sequentials.
        stage_channels: output channels of each stage.
        stage_strides: total stride of each stage (the product over its blocks), after the stem's
            `stem_stride`; `build_stages` records both lists.
        num_features: channels that reach the classifier (output of `head`).
        min_input: smallest input side the model accepts. Default: the total stride, so that every
            stride-2 step keeps at least one pixel; pass it only where the geometry needs more
            (unpadded convs, a head of fixed size).
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: nn.Sequential,
        head: nn.Module,
        *,
        in_chans: int,
        num_classes: int,
        num_features: int,
        stage_channels: Sequence[int],
        stage_strides: Sequence[int],
        stem_stride: int,
        drop_rate: float = 0.0,
        min_input: int | None = None,
        global_pool: bool = True,
    ):
        super().__init__()
        if len(stage_channels) != len(stages) or len(stage_strides) != len(stages):
            raise ConfigError("stage_channels and stage_strides need one entry per stage")
        if not 0.0 <= drop_rate < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.in_chans, self.num_classes, self.num_features = in_chans, num_classes, num_features
        self.stage_channels = list(stage_channels)
        reductions, r = [], stem_stride
        for s in stage_strides:
            r *= s
            reductions.append(r)
        self.stage_reductions = reductions
        self.min_input = min_input if min_input is not None else r
        self.stem, self.stages, self.head = stem, stages, head
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        self.drop_rate = drop_rate
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.classifier = nn.Linear(num_features, num_classes) if num_classes else nn.Identity()

    def check_input(self, x: Tensor) -> None:
        """One-line ValueError for a wrong rank or channel count, or an image too small."""
        if is_tracing():
            return
        if x.ndim != 4:
            raise ConfigError(f"expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ConfigError(
                f"expected {self.in_chans} input channels, got {x.shape[1]} (shape "
                f"{tuple(x.shape)}); build the model with in_chans={x.shape[1]}"
            )
        if min(x.shape[-2:]) < self.min_input:
            raise ConfigError(
                f"input {tuple(x.shape[-2:])} is smaller than this model's minimum "
                f"{self.min_input}x{self.min_input}"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.pool(self.head(x)).flatten(1)
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """The final layer (timm's name for it): nn.Linear, or nn.Identity without classes."""
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one (0: no classifier)."""
        self.num_classes = num_classes
        self.classifier = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )
        if num_classes:
            init_linear(self.classifier)

    @property
    def feature_info(self) -> list[dict]:
        """Per stage: its index, output channels and total stride (reduction) from the input."""
        return [
            {"stage": i, "channels": c, "reduction": r}
            for i, (c, r) in enumerate(zip(self.stage_channels, self.stage_reductions))
        ]


@dataclass(frozen=True)
class StageRow:
    """One stage of a table that is only (blocks, width, stride) per stage: ShuffleNet, VGNet."""

    n: int  # blocks in this row; only the first uses stride s
    out: int  # output channels
    s: int  # stride of the first block

    def __post_init__(self):
        if self.n < 1 or self.out < 1 or self.s not in (1, 2):
            raise ConfigError(f"bad row {self}")


@dataclass(frozen=True)
class BlockSite:
    """Where `build_stages` puts a block: everything a family's block factory may need."""

    in_channels: int
    out_channels: int
    stride: int  # the row's stride for its first block, 1 for the others
    repeat: int  # index within the row (0: the row's first block)
    index: int  # index over the whole network, from 0
    total: int  # blocks in the network
    stage: int  # index of the stage the block goes into

    def drop_path(self, rate: float) -> float:
        """Stochastic depth rising linearly with the block index, 0 for the first (TF, timm)."""
        return rate * self.index / self.total


@dataclass
class Stages:
    """What `build_stages` built: the stages and, per stage, its output width and total stride."""

    modules: list[nn.Sequential]
    channels: list[int]
    strides: list[int]
    out_channels: int  # the last block's output width

    def add(self, stage: nn.Sequential, channels: int, stride: int = 1) -> None:
        """Append a stage that is not made of table rows (MobileNetV3's final 1x1 conv)."""
        self.modules.append(stage)
        self.channels.append(channels)
        self.strides.append(stride)
        self.out_channels = channels

    def sequential(self) -> nn.Sequential:
        return nn.Sequential(*self.modules)


def per_row(previous: Any, row: Any) -> bool:
    """Every row is a stage (MobileNetV1/V2, Xception, ShuffleNet, VGNet)."""
    return True


def by_width(previous: Any, row: Any) -> bool:
    """A new output width opens a stage (timm's `blocks.i` for MixNet, MobileNetV3)."""
    return row.out != previous.out


def by_stride(previous: Any, row: Any) -> bool:
    """A stride-2 row opens a stage: one stage per resolution (MobileFaceNet)."""
    return row.s != 1


def build_stages(
    rows: Sequence[Any],
    in_channels: int,
    make_block: Callable[[Any, BlockSite], nn.Module],
    *,
    opens_stage: Callable[[Any, Any], bool] = per_row,
    width: Callable[[Any], int] = lambda row: row.out,
) -> Stages:
    """The stage loop of every family: each row gives `row.n` blocks, the first with stride `row.s`.

    Args:
        rows: table rows with at least `n` (blocks), `s` (stride of the first block) and what
            `width` reads (default `row.out`).
        in_channels: width of the stem's output.
        make_block: `(row, site) -> block`; `site` has the block's in/out widths, stride and
            position (see BlockSite).
        opens_stage: `(previous_row, row) -> bool`, whether `row` starts a new stage.
        width: a row's output width after the family's multiplier.
    """
    total, index = sum(row.n for row in rows), 0
    stages: list[list[nn.Module]] = []
    channels, strides = [], []
    previous = None
    for row in rows:
        if previous is None or opens_stage(previous, row):
            stages.append([])
            channels.append(0)
            strides.append(1)
        out = width(row)
        for repeat in range(row.n):
            stride = row.s if repeat == 0 else 1
            site = BlockSite(in_channels, out, stride, repeat, index, total, len(stages) - 1)
            stages[-1].append(make_block(row, site))
            strides[-1] *= stride
            in_channels, index = out, index + 1
        channels[-1], previous = out, row
    return Stages([nn.Sequential(*blocks) for blocks in stages], channels, strides, in_channels)


class FeatureExtractor(nn.Module):
    """Backbone mode: the last feature map at each resolution, for detection or segmentation heads.

    forward(x) -> list of tensors, one per entry of `feature_info` (channels and reduction).
    """

    def __init__(self, model: LightNet, out_indices: Sequence[int] | None = None):
        super().__init__()
        info = model.feature_info
        if out_indices is None:  # the last stage before each change of resolution, and the last one
            out_indices = [
                i
                for i in range(len(info))
                if i == len(info) - 1 or info[i + 1]["reduction"] != info[i]["reduction"]
            ]
        bad = [i for i in out_indices if not 0 <= i < len(info)]
        if bad:
            raise ConfigError(f"out_indices {bad} out of range for {len(info)} stages")
        self.out_indices = list(out_indices)
        self.feature_info = [info[i] for i in self.out_indices]
        self.check_input = model.check_input
        self.stem, self.stages = model.stem, model.stages[: max(self.out_indices) + 1]

    def forward(self, x: Tensor) -> list[Tensor]:
        self.check_input(x)
        x = self.stem(x)
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                features.append(x)
        return features


def init_linear(layer: nn.Linear) -> None:
    # uniform(+-1/sqrt(in)). The TF MixNet/EfficientNet rule, +-1/sqrt(out), is almost the same
    # for 1000 classes (0.032 vs 0.028 at 1280 features) but scales logits by sqrt(1000/n) for n
    # classes: a 2-class head (face liveness) would start 22x larger than an ImageNet head.
    bound = 1.0 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.weight, -bound, bound)
    if layer.bias is not None:  # MobileFaceNet's embedding layer has none
        nn.init.zeros_(layer.bias)


def init_weights(model: nn.Module) -> None:
    """He-normal (fan-out) convs, unit/zero norms, uniform classifier (MobileNet/MixNet recipe)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            init_linear(m)
