"""`lightnets study NAME --data DIR [--scale tiny|small|paper]`: a paper's ablation on your data,
ending in the paper's claims and whether this run supports, contradicts or is inconclusive about
each (decided from mean ± spread over seeds; inconclusive within noise or with one seed).

    lightnets study                                    # list the studies and scales
    lightnets study mixconv-kernel-size --data DIR --scale small -o runs/k
    lightnets study vgnet-fixed-kernels --data DIR --scale paper --address auto --gpus-per-trial 1

It is `lightnets compare` over the study's networks at the scale's width, input size, epochs and
seeds (explicit --epochs/--seeds/--img-size/--images-per-class/--recipe override them); the same
options place the trials on Ray, and re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import sys

from lightnets.commands import _flags
from lightnets.commands.compare import (
    Progress,
    add_sweep_options,
    print_results,
    split_train_flags,
    sweep_kwargs,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightnets study",
        description="Run one of the papers' ablations and judge its claims on your data.",
        epilog="Any other flag goes to every trial's `lightnets train` (see its --help).",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="study (omit to list them)")
    parser.add_argument(
        "--scale",
        choices=("tiny", "small", "paper"),
        default="tiny",
        help="tiny: CI, seconds per trial; small: a CPU afternoon; paper: a GPU cluster",
    )
    add_sweep_options(parser)
    return parser


def list_studies() -> str:
    from lightnets.compare.studies import SCALES, STUDIES

    width = max(map(len, STUDIES))
    lines = [f"  {s.name:<{width}}  {s.summary}" for s in STUDIES.values()]
    scales = [
        f"  {name:<6} {s.epochs} epochs, {s.seeds} seed(s), {s.img_size} px, width {s.width:g}"
        + (f", {s.images_per_class} images per class" if s.images_per_class else "")
        for name, s in SCALES.items()
    ]
    return "studies:\n" + "\n".join(lines) + "\n\nscales:\n" + "\n".join(scales)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    mine, train_args = split_train_flags(parser, argv)
    args = _flags.parse_args(parser, mine)
    if args.name is None:
        print(list_studies())
        return 0
    from lightnets.compare.studies import get_study, render_claims, study

    get_study(args.name)  # an unknown name fails before anything else
    progress = Progress(not args.no_progress)
    try:
        result = study(
            args.name,
            args.data or "digits",
            scale=args.scale,
            output=args.output,
            epochs=args.epochs,
            seeds=args.seeds,
            img_size=args.img_size,
            images_per_class=args.images_per_class,
            recipe=args.recipe,
            train_args=train_args,
            deterministic=args.deterministic is not False,
            on_event=progress,
            **sweep_kwargs(args),
        )
    finally:
        progress.close()
    print_results(result, args.format, progress)
    if args.format in ("table", "markdown"):
        print(f"\n{render_claims(result['claims'], args.format)}")
    return 1 if result["failed"] else 0
