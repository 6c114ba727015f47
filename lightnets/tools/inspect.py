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
import json
from pathlib import Path

import torch
from torch import nn

import lightnets
from lightnets.errors import ConfigError
from lightnets.registry import resolve_name


def read_checkpoint(path: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, training config) of a weights file, a `lightnets train` checkpoint directory
    or run directory (config from the safetensors metadata), or a torch file with a "config"
    dict."""
    from lightnets.train.checkpoint import read_weights

    state, metadata = read_weights(path)
    if metadata.get("config"):
        return state, json.loads(metadata["config"])
    if Path(path).is_file() and not path.endswith(".safetensors"):
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(raw, dict) and isinstance(raw.get("config"), dict):
            return state, dict(raw["config"])
    return state, {}


def _infer_shapes(state: dict[str, torch.Tensor]) -> dict:
    """num_classes from the classifier, in_chans from the stem's first convolution (safetensors
    files list keys alphabetically, so "first in the file" is not "first in the network")."""
    out = {}
    if "classifier.weight" in state:
        out["num_classes"] = state["classifier.weight"].shape[0]
    stem = sorted(k for k, v in state.items() if k.startswith("stem.") and v.ndim == 4)
    if stem:
        out["in_chans"] = state[stem[0]].shape[1]
    return out


def build(
    name: str, checkpoint: str | None, args: argparse.Namespace, load: bool = True
) -> tuple[nn.Module, dict]:
    """(model, training config): `name` at random init (seed args.seed) or with the weights of
    `checkpoint`, built with the classes, input channels and stem the checkpoint was trained with.
    load=False gives the checkpoint's architecture at random init (the baseline)."""
    kwargs = {"num_classes": args.num_classes, "in_chans": args.in_chans}
    if args.small_input:
        kwargs["small_input"] = True
    state, cfg = None, {}
    if checkpoint is not None and checkpoint != "random":
        state, cfg = read_checkpoint(checkpoint)
        trained = cfg.get("model")
        if trained and resolve_name(trained) != resolve_name(name):
            raise ConfigError(f"checkpoint {checkpoint} holds {trained}, not {name}")
        if cfg.get("in_chans"):
            kwargs["in_chans"] = cfg["in_chans"]
        # `lightnets train` rule: small_input defaults to img_size <= 64
        small = cfg.get("small_input")
        if small is None and cfg.get("img_size"):
            small = cfg["img_size"] <= 64
        if small:
            kwargs["small_input"] = True
        if not lightnets.weights._is_timm_layout(state):
            for key, value in _infer_shapes(state).items():
                kwargs[key] = cfg.get(key) or value
    torch.manual_seed(args.seed)
    model = lightnets.create_model(name, **{k: v for k, v in kwargs.items() if v is not None})
    if state is not None and load:
        lightnets.load_weights(model, state)
    return model, cfg


def _entries(args: argparse.Namespace) -> tuple[dict[str, nn.Module], dict]:
    """(label -> model, training config of the first checkpoint): the MODEL (+ checkpoint), or
    the two --compare entries."""
    pairs = [(args.model, args.checkpoint)]
    if args.compare:
        pairs = []
        for entry in args.compare:
            name, ckpt = args.model, entry
            head, sep, tail = entry.partition(":")
            if sep and head and tail:
                try:
                    name, ckpt = resolve_name(head), tail
                except KeyError:
                    pass  # a path with a colon in it
            pairs.append((name, ckpt))
    labels = args.labels or [None] * len(pairs)
    if len(labels) != len(pairs):
        raise ConfigError(f"--labels needs {len(pairs)} names, one per model, got {len(labels)}")
    models, config = {}, {}
    for (name, ckpt), label in zip(pairs, labels):
        if label is None:
            tag = "random init" if ckpt in (None, "random") else Path(ckpt).name
            label = f"{name} ({tag})" if f"{name} ({tag})" not in models else f"{name} ({ckpt})"
        if label in models:
            raise ConfigError(f"--labels must differ, got {label!r} twice")
        models[label], cfg = build(name, ckpt, args)
        config = config or cfg
    return models, config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightnets inspect",
        description="Depthwise kernels (classes, spectra) and feature maps of a network.",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{kernels,features}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("model", help="registered model name (see `lightnets models`)")
    common.add_argument("-o", "--out-dir", required=True, help="folder for tables and pictures")
    common.add_argument("--checkpoint", help="weights file (default: random init)")
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
        type=int,
        default=None,
        help="classifier size for random init (default: the model's)",
    )
    common.add_argument("--in-chans", type=int, default=None, help="input channels (default 3)")
    common.add_argument("--small-input", action="store_true", help="stride-1 stem (32-64 px)")
    common.add_argument("--seed", type=int, default=0, help="seed of the random init")
    common.add_argument("--no-plots", action="store_true", help="tables and summary only")
    k = sub.add_parser("kernels", parents=[common], help="kernel atlas, classes and spectra")
    k.add_argument("--max-kernels", type=int, default=32, help="kernels per layer in the atlas")
    k.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the random-init baseline quoted next to a checkpoint",
    )
    f = sub.add_parser("features", parents=[common], help="feature-map grids and layer similarity")
    f.add_argument("--image", required=True, help="image file (read with Pillow)")
    f.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="resize the image to this side (default: the model card's input_size)",
    )
    f.add_argument("--max-channels", type=int, default=32, help="channels per feature-map grid")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.compare and args.checkpoint:
        raise ConfigError("use either --checkpoint or --compare, not both")
    from lightnets.inspect import feature_report, kernel_report, load_image

    models, config = _entries(args)
    if args.action == "kernels":
        if args.max_kernels < 1:
            raise ConfigError(f"--max-kernels must be >= 1, got {args.max_kernels}")
        baseline = (
            build(args.model, args.checkpoint, args, load=False)[0]
            if args.checkpoint and not args.no_baseline
            else None
        )
        report = kernel_report(
            models, args.out_dir, baseline, args.max_kernels, plots=not args.no_plots
        )
    else:
        first = next(iter(models.values()))
        card = lightnets.model_card(resolve_name(args.model))
        size = args.input_size or config.get("img_size") or card.input_size
        x = load_image(args.image, size, card.mean, card.std, getattr(first, "in_chans", 3))
        report = feature_report(models, x, args.out_dir, args.max_channels, plots=not args.no_plots)
    print("\n".join(report.lines))
    print(f"wrote {len(report.files)} files to {args.out_dir}")
    return 0
