"""`lightnets inspect`: look inside a network the way the VGNet paper (arXiv:2207.10318) did.

    lightnets inspect kernels MODEL [--checkpoint C] -o DIR       kernel atlas, classes, spectra
    lightnets inspect kernels MODEL --compare random C -o DIR     the same, side by side
    lightnets inspect features MODEL [--checkpoint C] --image IMG -o DIR   feature maps, similarity

MODEL is a registered name. A checkpoint is a lightnets/timm state dict (.pth, .safetensors) or a
`lightnets train` checkpoint; the classifier size and input channels are read from it. A --compare
entry is a checkpoint, `random` (fresh init), or NAME:CHECKPOINT / NAME:random for another model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from lightnets.commands import _flags
from lightnets.errors import ConfigError, UnknownNameError


def build(name: str, checkpoint: str | None, args: argparse.Namespace, load: bool = True):
    """The LoadedModel of `name` at random init (seed args.seed) or with `checkpoint`'s weights,
    built as the checkpoint was trained; load=False keeps that architecture at random init."""
    from lightnets.checkpoints import load_checkpoint
    from lightnets.registry import resolve_name

    torch.manual_seed(args.seed)
    custom = name is not None and resolve_name(name) == "mixnet_custom"
    return load_checkpoint(
        None if checkpoint in (None, "random") else checkpoint,
        name,
        load=load,
        num_classes=args.num_classes,
        in_chans=args.in_chans,
        small_input=True if args.small_input else None,
        img_size=getattr(args, "img_size", None),
        arch=args.arch if custom else None,
    )


def _entries(args: argparse.Namespace) -> dict[str, object]:
    """label -> LoadedModel: the MODEL (+ checkpoint), or the two --compare entries."""
    from lightnets.registry import resolve_name

    pairs = [(args.model, args.checkpoint)]
    if args.compare:
        pairs = []
        for entry in args.compare:
            name, ckpt = args.model, entry
            head, sep, tail = entry.partition(":")
            if sep and head and tail:
                try:
                    name, ckpt = resolve_name(head), tail
                except UnknownNameError:
                    pass  # a path with a colon in it
            pairs.append((name, ckpt))
    labels = args.labels or [None] * len(pairs)
    if len(labels) != len(pairs):
        raise ConfigError(f"--labels needs {len(pairs)} names, one per model, got {len(labels)}")
    entries = {}
    for (name, ckpt), label in zip(pairs, labels):
        if label is None:
            tag = "random init" if ckpt in (None, "random") else Path(ckpt).name
            label = f"{name} ({tag})" if f"{name} ({tag})" not in entries else f"{name} ({ckpt})"
        if label in entries:
            raise ConfigError(f"--labels must differ, got {label!r} twice")
        entries[label] = build(name, ckpt, args)
    return entries


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightnets inspect",
        description="Depthwise kernels (classes, spectra) and feature maps of a network.",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{kernels,features}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("model", help="registered model name (see `lightnets models`)")
    _flags.add_output(
        common, required=True, help="folder for tables and pictures", old=("--out-dir",)
    )
    _flags.add_checkpoint(common, help="weights (default: random init)")
    _flags.add_arch(common)
    common.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="two checkpoints (or `random`, or NAME:CHECKPOINT) side by side",
    )
    common.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        help="names for the models in titles, summaries and file names (one per model)",
    )
    common.add_argument(
        "--num-classes",
        type=_flags.positive_int,
        default=None,
        help="classifier size for random init (default: the model's)",
    )
    common.add_argument(
        "--in-chans", type=int, choices=(1, 3), default=None, help="input channels (default 3)"
    )
    common.add_argument("--small-input", action="store_true", help="stride-1 stem (32-64 px)")
    common.add_argument("--seed", type=int, default=0, help="seed of the random init")
    common.add_argument("--no-plots", action="store_true", help="tables and summary only")
    k = sub.add_parser("kernels", parents=[common], help="kernel atlas, classes and spectra")
    k.add_argument(
        "--max-kernels", type=_flags.positive_int, default=32, help="kernels per layer in the atlas"
    )
    k.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the random-init baseline quoted next to a checkpoint",
    )
    f = sub.add_parser("features", parents=[common], help="feature-map grids and layer similarity")
    f.add_argument("--image", required=True, help="image file (read with Pillow)")
    _flags.add_img_size(f, help="resize the image to this side (default: the run's, else card's)")
    f.add_argument(
        "--max-channels", type=_flags.positive_int, default=32, help="channels per feature-map grid"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _flags.parse_args(build_parser(), argv)
    if args.compare and args.checkpoint:
        raise ConfigError("use either --checkpoint or --compare, not both")
    if args.action == "features" and not Path(args.image).is_file():
        raise FileNotFoundError(f"--image {args.image}: no such file")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"-o {out_dir}: exists and is not a folder")
    from lightnets.inspect import feature_report, kernel_report, load_image

    entries = _entries(args)
    models: dict[str, nn.Module] = {label: e.model for label, e in entries.items()}
    if args.action == "kernels":
        baseline = (
            build(args.model, args.checkpoint, args, load=False).model
            if args.checkpoint and not args.no_baseline
            else None
        )
        report = kernel_report(models, out_dir, baseline, args.max_kernels, plots=not args.no_plots)
    else:
        first = next(iter(entries.values()))
        pre = first.preprocessing
        x = load_image(args.image, pre.img_size, pre.mean, pre.std, first.in_chans)
        report = feature_report(models, x, out_dir, args.max_channels, plots=not args.no_plots)
    print("\n".join(report.lines))
    print(f"wrote {len(report.files)} files to {out_dir}")
    return 0
