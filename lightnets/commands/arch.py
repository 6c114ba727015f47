"""`lightnets arch`: print, convert or check a MixNet-style architecture file.

    lightnets arch mixnet_s                        # the MixNet-S table as TOML, to start from
    lightnets arch mixnet_s -o my_net.toml         # ... written to a file (.toml or .json)
    lightnets arch my_net.toml --img-size 64       # check a file, and that it fits 64 px inputs

The table goes to stdout (or -o), a one-line summary to stderr. `--arch FILE` on train, profile,
export, eval, predict and inspect builds `mixnet_custom` from such a file.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lightnets.commands import _flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lightnets arch",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "source", help="a zoo MixNet (mixnet_s, mixnet_m, mixnet_l) or a .toml/.json file"
    )
    _flags.add_output(p, help="write the table here (.toml or .json) instead of to stdout")
    _flags.add_img_size(p, help="also check that the table fits inputs of this side")
    p.add_argument("--small-input", action="store_true", help="with the stride-1 stem (32-64 px)")
    return p


def main(argv: list[str] | None = None) -> int:
    from lightnets.models.arch import (
        SUFFIXES,
        Architecture,
        check_fits,
        read_arch,
        smallest_input,
        to_toml,
        write_arch,
    )

    args = _flags.parse_args(build_parser(), argv)
    is_file = Path(args.source).suffix in SUFFIXES
    arch = read_arch(args.source) if is_file else Architecture.from_model_name(args.source)
    if args.img_size is not None:
        check_fits(arch, args.img_size, args.small_input)
    if args.output:
        write_arch(arch, args.output)
    else:
        print(to_toml(arch), end="")
    blocks = sum(math.ceil(row.n * arch.depth) for row in arch.rows)
    print(
        f"{args.source}: {len(arch.rows)} rows, {blocks} blocks; fits inputs from "
        f"{smallest_input(arch)} px ({smallest_input(arch, True)} px with --small-input)"
        + (f"; wrote {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return 0
