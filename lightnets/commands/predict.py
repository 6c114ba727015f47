"""`lightnets predict`: classify images with a checkpoint and print the top classes with scores.

    lightnets predict cat.jpg dog.png photos/ --checkpoint runs/mixnet_s-pets-20250101-120000

Class names and preprocessing (resize, center crop, mean/std) come from the checkpoint. A folder
stands for the images below it. Unreadable images are listed on stderr, one line each, and the
exit status is 2 when there were any; the others are still classified.
"""

from __future__ import annotations

import argparse
import json
import sys

from lightnets.commands import _flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightnets predict", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="image files or folders of images")
    _flags.add_checkpoint(p, required=True)
    p.add_argument("--topk", type=_flags.positive_int, default=5)
    p.add_argument("--model", help="model name (default: the run's)")
    _flags.add_arch(p)
    _flags.add_device(p)
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    _flags.add_format(p, choices=("table", "json"))
    return p


def main(argv: list[str] | None = None) -> int:
    from lightnets.checkpoints import load_checkpoint
    from lightnets.errors import ConfigError
    from lightnets.inference import classify_images, expand_images
    from lightnets.train.distributed import pick_device

    args = _flags.parse_args(build_parser(), argv)
    images = expand_images(args.images)
    if not images:
        raise ConfigError(f"no images in {' '.join(args.images)}")
    loaded = load_checkpoint(
        args.checkpoint,
        _flags.model_for_arch(args.model, args.arch),
        prefer_ema=not args.no_ema,
        device=pick_device(args.device),
        arch=args.arch,
    )
    results = classify_images(
        loaded.model, images, loaded.class_names, loaded.preprocessing, loaded.image_mode, args.topk
    )
    if args.format == "json":
        print(json.dumps([vars(r) for r in results], indent=1))
    else:
        width = max(map(len, loaded.class_names))
        for r in results:
            if r.top is not None:
                print(r.image)
                for name, p in r.top:
                    print(f"  {name:<{width}}  {p:.4f}")
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"lightnets predict: error: cannot read {r.image}: {r.error}", file=sys.stderr)
    return 2 if failed else 0
