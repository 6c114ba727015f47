"""`lightnets models [PATTERN]`: registered models with their paper's params, MACs and top-1.

By default the figures come from the model cards (the paper's, and an exact reference count where
one exists); `--measure` builds each model and counts its parameters and MACs here.
"""

from __future__ import annotations

import argparse

import lightnets
from lightnets.errors import UnknownNameError


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def rows(pattern: str, measure: bool) -> list[dict]:
    names = lightnets.list_models(pattern)
    if not names:
        raise UnknownNameError(f"no model matches {pattern!r}; `lightnets models` lists them all")
    out = []
    for name in names:
        card = lightnets.model_card(name)
        row = {
            "model": name,
            "input": card.input_size,
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
            row["macs_m"] = count_macs(model, example_input(model, card.input_size)).macs / 1e6
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightnets models", description=__doc__)
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'mixnet*'")
    parser.add_argument("--measure", action="store_true", help="build and count each model")
    args = parser.parse_args(argv)
    table = rows(args.pattern, args.measure)
    cols = [
        ("model", "model", "s"),
        ("input", "input", "d"),
        ("paper_params_m", "params(M)", ".2f"),
        ("paper_macs_m", "MACs(M)", ".0f"),
        ("paper_top1", "top-1", ".1f"),
        ("ref_params_m", "exact ref params(M)", ".4f"),
    ]
    if args.measure:
        cols += [("params_m", "measured params(M)", ".4f"), ("macs_m", "measured MACs(M)", ".2f")]
    cols.append(("aliases", "aliases", "s"))
    cells = [[_fmt(r[key], spec) for key, _, spec in cols] for r in table]
    heads = [head for _, head, _ in cols]
    widths = [max(len(c) for c in column) for column in zip(heads, *cells)]
    for line in (heads, *cells):
        print(
            "  ".join(
                c.ljust(w) if i in (0, len(line) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths))
            ).rstrip()
        )
    print(
        f"\n{len(table)} models; params/MACs/top-1 are the papers' (MACs = multiply-adds at the"
        " input size); `--measure` counts them here."
    )
    return 0
