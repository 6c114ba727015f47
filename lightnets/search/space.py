"""The search space of a latency-aware MixNet search ("MixConv: Mixed Depthwise Convolutional
Kernels", Tan & Le, arXiv:1907.09595, Sec. 4: MnasNet's search with mixed kernels added).

Defines `RowChoices` (what one row may be), `MIXNET_S_SPACE` (MixNet-S's stride skeleton with the
choices of every row), `build_network` (a table -> the MixNet it declares) and the moves a
search makes: `sample`, `mutate` (one field of one row, for regularized evolution), `cheapen`
(one field one option cheaper, to bring a table under a latency budget), `smallest` and
`largest`; `fit_space` cuts the kernels to those that fit an input size.

Deviations from the paper: the paper searches MnasNet's space (kernel 3/5, expansion 3/6, SE
0/0.25, ...) plus mixed kernels; here the skeleton is fixed to MixNet-S (stem 16, head 1536, its
11 row strides) and each row picks from small lists around MixNet-S's own row (widths down to
about half of its own; 1x1 convs dense or grouped as in MixNet-S), so MixNet-S itself is a point
of the space (`contains(MIXNET_S)`). The first row stays an expansion-1 (depthwise-separable)
block as in MixNet-S.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields, replace

from lightnets.errors import ConfigError
from lightnets.models.mixnet import MixNet, MixRow

STEM, HEAD = 16, 1536  # MixNet-S's stem and head widths, fixed

KERNELS = ((3,), (3, 5), (3, 5, 7), (3, 5, 7, 9), (3, 5, 7, 9, 11))
EXPANSIONS = (3, 6)
SE_RATIOS = (0.0, 0.25, 0.5)
ACTS = ("relu", "swish")


@dataclass(frozen=True)
class RowChoices:
    """The values one row of the table may take; each tuple is ordered cheapest first."""

    n: tuple[int, ...]  # blocks in the row
    out: tuple[int, ...]  # output channels
    s: int  # stride of the row's first block (fixed: the skeleton)
    e: tuple[int, ...] = EXPANSIONS
    k: tuple[tuple[int, ...], ...] = KERNELS
    pw: tuple[tuple[int, int], ...] = ((1, 1),)  # groups of the expand / project 1x1 convs
    se: tuple[float, ...] = SE_RATIOS
    act: tuple[str, ...] = ACTS


# the fields a search changes, in MixRow's order
SEARCHED = ("n", "out", "e", "k", "pw", "se", "act")

# fmt: off
# MixNet-S (models/mixnet.py, MIXNET_S) row by row: repeats within +-1 of its own (at least 1),
# widths from about half of its own (so that the space reaches MobileNetV2-0.35's latency) to one
# multiple of 8 (1/5 of the width from 40 channels on) above it. 1x1 groups: dense, or MixNet-S's
# grouped ones. Dense comes first as the cheaper: one convolution per 1x1 where groups make it
# several operators, which on a CPU runtime at small maps costs more than the MACs it saves
# (ONNX Runtime int8 at 32 px: docs/search.md).
DENSE, GROUPED, SPLIT_PROJECT = ((1, 1),), ((1, 1), (2, 2)), ((1, 1), (1, 2))
#             n          out                        s  e
MIXNET_S_SPACE = (
    RowChoices((1, 2),    (8, 16, 24),               1, (1,),  pw=DENSE),
    RowChoices((1, 2),    (8, 16, 24, 32),           2,        pw=GROUPED),
    RowChoices((1, 2),    (8, 16, 24, 32),           1,        pw=GROUPED),
    RowChoices((1, 2),    (24, 32, 40, 48),          2,        pw=DENSE),
    RowChoices((2, 3, 4), (24, 32, 40, 48),          1,        pw=GROUPED),
    RowChoices((1, 2),    (40, 64, 80, 96),          2,        pw=SPLIT_PROJECT),
    RowChoices((1, 2, 3), (40, 64, 80, 96),          1,        pw=SPLIT_PROJECT),
    RowChoices((1, 2),    (64, 96, 120, 144),        1,        pw=GROUPED),
    RowChoices((1, 2, 3), (64, 96, 120, 144),        1,        pw=GROUPED),
    RowChoices((1, 2),    (104, 160, 200, 240),      2,        pw=DENSE),
    RowChoices((1, 2, 3), (104, 160, 200, 240),      1,        pw=SPLIT_PROJECT),
)
# fmt: on


def _row(choices: RowChoices, pick) -> MixRow:
    """The MixRow of `choices` with each searched field chosen by `pick(field, options)`."""
    values = {name: pick(name, getattr(choices, name)) for name in SEARCHED}
    return MixRow(values.pop("n"), values.pop("out"), choices.s, **values)


def sample(
    rng: random.Random, space: tuple[RowChoices, ...] = MIXNET_S_SPACE
) -> tuple[MixRow, ...]:
    """A table drawn uniformly, field by field."""
    return tuple(_row(c, lambda name, options: rng.choice(options)) for c in space)


def smallest(space: tuple[RowChoices, ...] = MIXNET_S_SPACE) -> tuple[MixRow, ...]:
    """The cheapest table: every field at its first (cheapest) option."""
    return tuple(_row(c, lambda name, options: options[0]) for c in space)


def largest(space: tuple[RowChoices, ...] = MIXNET_S_SPACE) -> tuple[MixRow, ...]:
    """The most expensive table: every field at its last option."""
    return tuple(_row(c, lambda name, options: options[-1]) for c in space)


def contains(table, space: tuple[RowChoices, ...] = MIXNET_S_SPACE) -> bool:
    """Whether every row of `table` is one of the space's choices for that row."""
    if len(table) != len(space):
        return False
    return all(
        row.s == c.s and all(getattr(row, f) in getattr(c, f) for f in SEARCHED)
        for row, c in zip(table, space)
    )


def mutate(
    table, rng: random.Random, space: tuple[RowChoices, ...] = MIXNET_S_SPACE
) -> tuple[MixRow, ...]:
    """`table` with one field of one row set to another of its options (regularized evolution,
    Real et al., arXiv:1802.01548); the row and field are drawn uniformly among those that have
    a second option."""
    if not contains(table, space):
        raise ConfigError("mutate: the table is not in the search space")
    movable = [(i, f) for i, c in enumerate(space) for f in SEARCHED if len(getattr(c, f)) > 1]
    i, name = rng.choice(movable)
    options = [v for v in getattr(space[i], name) if v != getattr(table[i], name)]
    rows = list(table)
    rows[i] = replace(rows[i], **{name: rng.choice(options)})
    return tuple(rows)


def cheapen(
    table, rng: random.Random, space: tuple[RowChoices, ...] = MIXNET_S_SPACE
) -> tuple[MixRow, ...] | None:
    """`table` with one field of one row moved to the next cheaper of its options (the options
    are ordered cheapest first), drawn uniformly among the fields not at their cheapest; None
    when every field is (the table is `smallest(space)`)."""
    if not contains(table, space):
        raise ConfigError("cheapen: the table is not in the search space")
    movable = [
        (i, f)
        for i, c in enumerate(space)
        for f in SEARCHED
        if getattr(c, f).index(getattr(table[i], f)) > 0
    ]
    if not movable:
        return None
    i, name = rng.choice(movable)
    options = getattr(space[i], name)
    rows = list(table)
    rows[i] = replace(rows[i], **{name: options[options.index(getattr(table[i], name)) - 1]})
    return tuple(rows)


def differences(a, b) -> list[tuple[int, str]]:
    """(row, field) of every field in which tables `a` and `b` differ."""
    return [
        (i, f.name)
        for i, (x, y) in enumerate(zip(a, b))
        for f in fields(MixRow)
        if getattr(x, f.name) != getattr(y, f.name)
    ]


def fit_space(
    img_size: int, space: tuple[RowChoices, ...] = MIXNET_S_SPACE, small_input: bool | None = None
) -> tuple[RowChoices, ...]:
    """`space` with each row's kernel choices cut to those that fit its feature map at `img_size`
    (the rule of lightnets.models.arch.check_fits: a k x k kernel needs a map of at least
    (k + 1) / 2 px), taking the map after the row's stride, where all but its first block run.
    At 32 px with the stride-1 stem the last two rows keep (3,) only. ConfigError when the
    strides leave a row no kernel, naming the smallest size the space needs."""
    small = small_input_for(img_size) if small_input is None else small_input
    reduction, rows = (1 if small else 2), []
    for row in space:
        reduction *= row.s
        side = math.ceil(img_size / reduction)
        rows.append(replace(row, k=tuple(k for k in row.k if max(k) <= 2 * side - 1)))
    if not all(row.k for row in rows):
        stem = " with the stride-1 stem" if small else ""
        raise ConfigError(
            f"img_size {img_size}: the search space reduces the input {reduction}x{stem}, leaving "
            f"no room for a 3x3 kernel; it needs at least {reduction + 1} px"
        )
    return tuple(rows)


def small_input_for(img_size: int) -> bool:
    """The stride-1 stem for images of 64 px or less (CIFAR's 32 px): `lightnets train`'s rule
    (lightnets.checkpoints.wants_small_input), so that a searched network trains, is compared
    and deploys with the stem its latency was predicted for."""
    from lightnets.checkpoints import wants_small_input

    return wants_small_input(img_size)


def build_network(table, *, img_size: int = 224, num_classes: int = 1000, **kwargs) -> MixNet:
    """The MixNet a table of the space declares: MixNet-S's stem and head around `table`."""
    kwargs.setdefault("small_input", small_input_for(img_size))
    return MixNet(table, stem=STEM, head=HEAD, num_classes=num_classes, **kwargs)
