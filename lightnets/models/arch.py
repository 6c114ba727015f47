"""Architectures as data: a MixNet-style network written as a table in a TOML or JSON file.

Defines `Architecture` (the rows of a `MixRow` table plus stem, head, activation, multipliers and
padding: every argument the MixNet builders pass), its file form (`read_arch`, `write_arch`,
`to_toml`, `to_dict` / `from_dict` for checkpoints), `check_fits` (does the table suit an input
size) and the `mixnet_custom` builder: `create_model("mixnet_custom", arch=FILE)`.

Every value is checked before anything is built, and each mistake is one ConfigError naming the
file, the row and the field. `ZOO` holds the zoo's MixNet-S/M/L as architectures; the tests build
each one from a written file and compare parameters, MACs and state-dict keys with the builder's.
TF-padded `tf_mixnet_*` are not in it: their BatchNorm epsilon is not part of a table.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from lightnets.cards import ModelCard, register_model
from lightnets.errors import ConfigError, MissingDependencyError, UnknownNameError
from lightnets.layers import ACTIVATIONS
from lightnets.models.mixnet import MIXNET_M, MIXNET_S, MixNet, MixRow

PADDINGS = ("same", "tf_same")
SUFFIXES = (".toml", ".json")

# file field -> MixRow field, in the order a row is written
ROW_FIELDS = {
    "repeats": "n",
    "out": "out",
    "stride": "s",
    "expand": "e",
    "kernels": "k",
    "pw_groups": "pw",
    "se": "se",
    "act": "act",
    "skip": "skip",
}
ROW_REQUIRED = ("repeats", "out", "stride", "expand", "kernels")


@dataclass(frozen=True)
class Architecture:
    """A MixNet as data: MBConv rows plus what the builder adds around them.

    `width` scales the stem and every row's `out` (rounded to multiples of 8), `depth` multiplies
    `repeats` (rounded up); `head` is used as written (the MixNet builders never widen it).
    """

    rows: tuple[MixRow, ...]
    stem: int  # width of the 3x3 stem conv
    head: int  # width of the 1x1 head conv
    act: str = "relu"  # activation of the stem and head (rows name their own)
    width: float = 1.0
    depth: float = 1.0
    padding: str = "same"  # "tf_same": TensorFlow's asymmetric padding
    drop_rate: float = 0.0  # dropout before the classifier (a builder default, like mixnet_s's)

    def __post_init__(self):
        if not isinstance(self.rows, tuple) or not self.rows:
            raise ConfigError("an architecture needs a non-empty tuple of rows")
        if not all(isinstance(row, MixRow) for row in self.rows):
            raise ConfigError("architecture rows must be MixRow")
        _check_value("stem", self.stem, int, minimum=1)
        _check_value("head", self.head, int, minimum=1)
        _check_name("act", self.act, ACTIVATIONS)
        _check_name("padding", self.padding, PADDINGS)
        for name in ("width", "depth"):
            value = _check_value(name, getattr(self, name), float)
            if not 0 < value < math.inf:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if not 0.0 <= _check_value("drop_rate", self.drop_rate, float) < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {self.drop_rate!r}")

    @classmethod
    def from_model_name(cls, name: str) -> Architecture:
        """The table of a zoo MixNet (`mixnet_s`, `mixnet_m`, `mixnet_l`)."""
        if name not in ZOO:
            close = difflib.get_close_matches(name, ZOO, n=2)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(ZOO)}"
            raise UnknownNameError(f"no architecture table for {name!r}; {hint}")
        return ZOO[name]

    def to_dict(self) -> dict:
        """Plain values (lists, not tuples) under the file's field names; JSON-ready."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rows"}
        values["width"], values["depth"] = float(self.width), float(self.depth)
        rows = []
        for row in self.rows:
            cells = {key: getattr(row, attr) for key, attr in ROW_FIELDS.items()}
            rows.append({k: list(v) if isinstance(v, tuple) else v for k, v in cells.items()})
        return {**values, "rows": rows}

    @classmethod
    def from_dict(cls, values: Mapping, where: str = "architecture") -> Architecture:
        """The architecture `values` describe (a parsed file or `to_dict()`), every field checked;
        `where` starts each error message (the file name)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: expected a table of fields, got {type(values).__name__}")
        known = [f.name for f in fields(cls)]
        _check_keys(values, known, ("rows", "stem", "head"), where)
        rows = values["rows"]
        if not isinstance(rows, list) or not rows:
            raise ConfigError(f"{where}: rows must be a non-empty list of row tables")
        table = tuple(_row(row, f"{where}: row {i}") for i, row in enumerate(rows, 1))
        try:
            return cls(table, **{k: v for k, v in values.items() if k != "rows"})
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


def _row(values, where: str) -> MixRow:
    """One MixRow from a row table, each field checked with its name in the message."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a table such as {{repeats = 1, out = 16, ...}}")
    _check_keys(values, list(ROW_FIELDS), ROW_REQUIRED, where)
    cells = dict(values)
    for name in ("repeats", "out", "expand"):
        _check_value(name, cells[name], int, minimum=1, where=where)
    if _check_value("stride", cells["stride"], int, where=where) not in (1, 2):
        raise ConfigError(f"{where}: stride must be 1 or 2, got {cells['stride']!r}")
    cells["kernels"] = _int_list("kernels", cells["kernels"], where)
    even = [k for k in cells["kernels"] if k % 2 == 0]
    if even:
        raise ConfigError(f"{where}: kernel {even[0]} is even; depthwise kernels must be odd")
    if "pw_groups" in cells:
        cells["pw_groups"] = _int_list("pw_groups", cells["pw_groups"], where, length=2)
    if "se" in cells and not 0.0 <= _check_value("se", cells["se"], float, where=where) <= 1.0:
        raise ConfigError(
            f"{where}: se must be in [0, 1] (of the block's input), got {cells['se']}"
        )
    if "act" in cells:
        _check_name("act", cells["act"], ACTIVATIONS, where)
    if "skip" in cells and not isinstance(cells["skip"], bool):
        raise ConfigError(f"{where}: skip must be true or false, got {cells['skip']!r}")
    return MixRow(**{ROW_FIELDS[key]: value for key, value in cells.items()})


def _check_keys(values: Mapping, known: list[str], required: tuple[str, ...], where: str) -> None:
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown field {key!r}{hint}")
    missing = [key for key in required if key not in values]
    if missing:
        raise ConfigError(f"{where}: missing field {missing[0]!r}")


def _check_value(name: str, value, kind: type, minimum=None, where: str = ""):
    """`value` if it is a `kind` (an int also passes as a float; a bool never passes)."""
    kinds = (int, float) if kind is float else (kind,)
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{prefix}{name} must be {'a number' if kind is float else kind.__name__}"
                          f", got {value!r}")  # fmt: skip
    if minimum is not None and value < minimum:
        raise ConfigError(f"{prefix}{name} must be >= {minimum}, got {value!r}")
    return value


def _int_list(name: str, value, where: str, length: int | None = None) -> tuple[int, ...]:
    ok = isinstance(value, (list, tuple)) and value and (length is None or len(value) == length)
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        size = f"{length} " if length else ""
        raise ConfigError(
            f"{where}: {name} must be a list of {size}positive integers, got {value!r}"
        )
    return tuple(value)


def _check_name(name: str, value, choices, where: str = "") -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(choices)}"
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown {name} {value!r}; {hint}")


# fmt: off
# The zoo's MixNets as architectures: the arguments their builders in mixnet.py pass.
ZOO = {
    "mixnet_s": Architecture(MIXNET_S, stem=16, head=1536, drop_rate=0.2),
    "mixnet_m": Architecture(MIXNET_M, stem=24, head=1536, drop_rate=0.25),
    "mixnet_l": Architecture(MIXNET_M, stem=24, head=1536, drop_rate=0.25, width=1.3),
}
# fmt: on


# ---------------------------------------------------------------------------- fitting a size


def _row_maps(arch: Architecture, small_input: bool):
    """(row number, row, reduction of the smallest map its depthwise convs see) for each row."""
    reduction = 1 if small_input else 2
    for i, row in enumerate(arch.rows, 1):
        after = reduction * row.s
        # the row's first block convolves the map before its stride; the others, the one after
        yield i, row, after if math.ceil(row.n * arch.depth) > 1 else reduction
        reduction = after


def smallest_input(arch: Architecture, small_input: bool = False) -> int:
    """The smallest input side at which every stride leaves >= 1 px and every kernel fits."""
    total = (1 if small_input else 2) * math.prod(row.s for row in arch.rows)
    # a k x k kernel fits an m x m map when k <= 2m - 1: beyond that, its outer taps only ever
    # multiply padding. ceil(ceil(x / a) / b) = ceil(x / ab), so side m at reduction r needs
    # an input of at least r (m - 1) + 1.
    needs = [r * ((max(row.k) + 1) // 2 - 1) + 1 for _, row, r in _row_maps(arch, small_input)]
    return max(total, *needs)


def check_fits(arch: Architecture, img_size: int, small_input: bool = False) -> None:
    """ConfigError, naming the row and the smallest size that works, if the strides leave less
    than 1 px at `img_size` or a kernel is larger than the feature map it runs on."""
    smallest = smallest_input(arch, small_input)
    if img_size >= smallest:
        return
    stem = " with the stride-1 small-input stem" if small_input else ""
    total = (1 if small_input else 2) * math.prod(row.s for row in arch.rows)
    if img_size < total:
        raise ConfigError(
            f"img_size {img_size}: the strides{stem} reduce the input {total}x, leaving less than "
            f"1 px; this architecture needs at least {smallest} px"
        )
    for i, row, reduction in _row_maps(arch, small_input):
        side = math.ceil(img_size / reduction)
        if max(row.k) > 2 * side - 1:
            raise ConfigError(
                f"row {i}: kernel {max(row.k)} is larger than its {side}x{side} feature map at "
                f"img_size {img_size}{stem}; this architecture needs at least {smallest} px"
            )


# ---------------------------------------------------------------------------- files


def read_arch(path: str | os.PathLike) -> Architecture:
    """The architecture in a .toml or .json file; a parse error names the file and line."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"architecture file {path}: use a .toml or .json file")
    if not path.is_file():
        raise ConfigError(f"architecture file {path}: no such file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = _tomllib().loads(text)
        else:
            values = json.loads(text)
    except ValueError as err:  # TOMLDecodeError and JSONDecodeError say "(at) line N"
        raise ConfigError(f"{path}: {str(err).splitlines()[0]}") from None
    return Architecture.from_dict(values, str(path))


def _tomllib():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise MissingDependencyError(
                "TOML architecture files need tomli on Python 3.10: pip install tomli"
            ) from None
    return tomllib


def as_architecture(arch: Architecture | Mapping | str | os.PathLike) -> Architecture:
    """An Architecture from itself, a dict (`to_dict()`, a checkpoint's) or a file path."""
    if isinstance(arch, Architecture):
        return arch
    if isinstance(arch, Mapping):
        return Architecture.from_dict(arch)
    return read_arch(arch)


def write_arch(arch: Architecture, path: str | os.PathLike) -> None:
    """`arch` as a .toml (aligned rows) or .json file, written atomically."""
    from lightnets.files import write_text

    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"architecture file {path}: use a .toml or .json file")
    text = to_toml(arch) if path.suffix == ".toml" else json.dumps(arch.to_dict(), indent=1) + "\n"
    write_text(path, text)


TOML_HEADER = """\
# A MixNet-style network for lightnets (create_model("mixnet_custom", arch=FILE), --arch FILE).
# stem, head: widths of the 3x3 stem conv and the 1x1 head conv; act: their activation.
# width scales stem and every row's out (to multiples of 8); depth scales repeats (rounded up).
# rows: repeats (blocks; the first one strides), out (channels), stride (1 or 2), expand (ratio of
# the 1x1 expansion), kernels (one odd depthwise kernel per channel group: MixConv), pw_groups
# (groups of the expand / project 1x1 convs), se (squeeze-excite width over the block's input
# channels; 0: none), act, skip (residual where stride 1 and widths match).
"""


def to_toml(arch: Architecture) -> str:
    """The TOML text of `arch`, one aligned line per row.

    Written by hand: tomllib only reads, and this schema is scalars plus one list of flat
    tables, which inline tables write as a readable table (tomli_w would not align it)."""
    values = arch.to_dict()
    rows = values.pop("rows")
    lines = [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    cells = [[f"{key} = {_toml_value(value)}," for key, value in row.items()] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    table = [" ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(" ,") for row in cells]
    return TOML_HEADER + "\n".join([*lines, "rows = [", *(f"  {{ {t} }}," for t in table), "]", ""])


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is a JSON string for these names
    return repr(value)  # ints; finite floats (checked) as Python writes them, valid TOML


# ---------------------------------------------------------------------------- the builder

_CUSTOM_NOTE = "a MixNet built from an architecture file: its figures are the table's"


@register_model(card=ModelCard(paper="arXiv:1907.09595", needs_arch=True, note=_CUSTOM_NOTE))
def mixnet_custom(
    arch: Architecture | Mapping | str | os.PathLike | None = None, **kwargs
) -> MixNet:
    """A MixNet from a table: `arch` is an Architecture, its dict or a .toml/.json file. Builder
    arguments that are architecture fields (width, depth, act, padding, drop_rate) override it."""
    if arch is None:
        raise ConfigError(
            "mixnet_custom needs an architecture: create_model('mixnet_custom', arch=FILE) or "
            "--arch FILE (a .toml or .json table; `lightnets arch mixnet_s` prints one)"
        )
    overrides = {k: kwargs.pop(k) for k in ("width", "depth", "act", "padding", "drop_rate")
                 if k in kwargs}  # fmt: skip
    arch = replace(as_architecture(arch), **overrides)
    model = MixNet(
        arch.rows, stem=arch.stem, head=arch.head, width=arch.width, depth=arch.depth,
        act=arch.act, padding=arch.padding, drop_rate=arch.drop_rate, **kwargs,
    )  # fmt: skip
    model.arch = arch  # what a checkpoint stores to rebuild it without the file
    return model
