"""`lightnets models [PATTERN]`: registered models with their paper's params, MACs and top-1.

By default the figures come from the model cards (the paper's, and an exact reference count where
one exists); `--measure` builds each model and counts its parameters and MACs here.
"""

from __future__ import annotations

import argparse
import difflib
import re

import lightnets
from lightnets.commands import _flags
from lightnets.errors import UnknownNameError
from lightnets.tables import Column, render

# fmt: off
#         key               header                 spec
COLUMNS = (
    Column("model",          "model"),
    Column("img_size",       "input",               "d"),
    Column("paper_params_m", "params(M)",           ".2f"),
    Column("paper_macs_m",   "MACs(M)",             ".0f"),
    Column("paper_top1",     "top-1",               ".1f"),
    Column("ref_params_m",   "exact ref params(M)", ".4f"),
)
MEASURED = (
    Column("params_m",       "measured params(M)",  ".4f"),
    Column("macs_m",         "measured MACs(M)",    ".2f"),
)
ALIASES = Column("aliases",  "aliases")
# fmt: on
CUSTOM_NOTE = "mixnet_custom builds a MixNet from an architecture file (--arch FILE); see README"
NOTE = (
    "params/MACs/top-1 are the papers' (MACs = multiply-adds at the input size); `--measure` "
    "counts them here."
)


def match_models(pattern: str) -> list[str]:
    """Registered names matching the shell pattern, sorted; UnknownNameError naming close
    matches when none does. Only an exact name matches mixnet_custom (it needs an --arch)."""
    names = lightnets.list_models(pattern, include_custom=not re.search(r"[*?\[]", pattern))
    if names:
        return names
    literal = re.sub(r"\[[^\]]*\]|[*?]", "", pattern)  # the pattern without its wildcards
    close = difflib.get_close_matches(literal, lightnets.list_models(), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"no model matches {pattern!r}{hint} (`lightnets models` lists them)")


def rows(pattern: str, measure: bool) -> list[dict]:
    out = []
    for name in match_models(pattern):
        card = lightnets.model_card(name)
        row = {
            "model": name,
            "img_size": card.img_size,
            "paper_params_m": card.params_m,
            "paper_macs_m": card.macs_m,
            "paper_top1": card.top1,
            "ref_params_m": card.ref_params / 1e6 if card.ref_params else None,
            "aliases": ", ".join(card.aliases),
        }
        if measure:
            from lightnets.profiling import count_macs, count_params, example_input

            model = lightnets.create_model(name)
            row["params_m"] = count_params(model).trainable / 1e6
            row["macs_m"] = count_macs(model, example_input(model, card.img_size)).macs / 1e6
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightnets models", description=__doc__)
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'mixnet*'")
    parser.add_argument("--measure", action="store_true", help="build and count each model")
    _flags.add_format(parser)
    args = _flags.parse_args(parser, argv)
    table = rows(args.pattern, args.measure)
    columns = (*COLUMNS, *(MEASURED if args.measure else ()), ALIASES)
    notes = [f"{len(table)} models; {NOTE}", CUSTOM_NOTE]
    print(render(table, columns, args.format, notes=notes, rule=False, json_key="models"))
    return 0
