"""`lightnets predict`: classify images with a checkpoint and print the top classes with scores.

    lightnets predict cat.jpg dog.png --checkpoint runs/mixnet_s-pets-20250101-120000 --topk 3

Class names come from the checkpoint (saved by `lightnets train`); preprocessing is the run's
eval transform (resize, center crop, card mean/std).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from lightnets.errors import ConfigError
from lightnets.train.evaluate import load_for_inference
from lightnets.train.transforms import eval_transform, normalize, to_uint8_tensor


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightnets predict", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--checkpoint", required=True, help="run dir, checkpoint dir or .safetensors")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--model", help="model name (default: the run's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


@torch.no_grad()
def predict(model, images: list[str], class_names: list[str], pre: dict, mode: str, topk: int):
    """[(path, [(class, probability), ...] or None, error or None)] for each image."""
    from PIL import Image

    transform = eval_transform(pre.img_size, pre.crop_pct)
    device = next(model.parameters()).device
    mean = torch.tensor(pre.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, -1, 1, 1)
    results = []
    for path in images:
        try:
            with Image.open(path) as img:
                x = to_uint8_tensor(transform(img.convert(mode)))
        except Exception as err:  # unreadable: report it and go on with the others
            results.append((path, None, f"{type(err).__name__}: {err}"))
            continue
        probs = model(normalize(x[None].to(device), mean, std)).float().softmax(1)[0]
        top = probs.topk(min(topk, len(class_names)))
        pairs = [(class_names[i], float(p)) for p, i in zip(top.values, top.indices.tolist())]
        results.append((path, pairs, None))
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.topk < 1:
        raise ConfigError(f"--topk must be >= 1, got {args.topk}")
    model, cfg, class_names, pre = load_for_inference(
        args.checkpoint, args.model, args.device, not args.no_ema
    )
    mode = "L" if cfg.in_chans == 1 else "RGB"
    results = predict(model, args.images, class_names, pre, mode, args.topk)
    if args.json:
        print(json.dumps([{"image": p, "top": t, "error": e} for p, t, e in results], indent=1))
    else:
        width = max(map(len, class_names))
        for path, top, _ in results:
            if top is not None:
                print(path)
                for name, p in top:
                    print(f"  {name:<{width}}  {p:.4f}")
    failed = [(p, e) for p, _, e in results if e]
    for path, error in failed:
        print(f"lightnets predict: cannot read {path}: {error}", file=sys.stderr)
    return 1 if failed else 0
