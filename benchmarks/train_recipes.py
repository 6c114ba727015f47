"""Accuracy of training settings on a real image folder: each setting x model x seed is one
`lightnets train` run; the table gives val top-1 per epoch (mean and per-seed) and images/s.

    python benchmarks/train_recipes.py --data cifar10-5k --epochs 3 \\
        --models mixnet_s mobilenet_v2_w035 --seeds 0 1 --settings old new -o /tmp/recipes

cifar10-5k is the docs' CIFAR-10 subset (400 training and 100 validation photos a class, 32 px,
both from CIFAR-10's training set): `python benchmarks/cifar10_subset.py cifar-10-binary.tar.gz
cifar10-5k` makes it from CIFAR-10's binary release.

Settings are named lists of extra `lightnets train` flags (SETTINGS below); runs that already
finished in OUT are reused, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = {
    # what `lightnets train --img-size 32` did before the size-aware defaults
    "old": ["--train-crop", "resize", "--scale", "0.08", "1.0", "--crop-pct", "0.875",
            "--cache-images", "off", "--workers", "2"],
    "new": [],  # today's defaults
    "rrc35": ["--train-crop", "resize", "--scale", "0.35", "1.0"],  # the old CIFAR preset
    "pad-noflip": ["--hflip", "0"],
    "new-nodrop": ["--drop-rate", "0", "--drop-path-rate", "0"],
    "new-lr05": ["--lr-base", "0.05"],
    "new-lr02": ["--lr-base", "0.2"],
    "new-bs32": ["--batch-size", "32", "--lr-base", "0.2"],  # lr 0.025 as the default, 2x steps
    "new-warmup": ["--warmup-epochs", "1"],
    "new-bn-tf": ["--bn-momentum", "0.01", "--bn-eps", "0.001"],
    "new-adamw": ["--opt", "adamw", "--lr-base", "0.002", "--weight-decay", "0.05"],
}  # fmt: skip


def run_one(out: Path, data: str, model: str, seed: int, setting: str, epochs: int, extra):
    run_dir = out / f"{setting}-{model}-s{seed}"
    metrics = run_dir / "metrics.json"
    if metrics.is_file() and len(json.loads(metrics.read_text())) == epochs:
        return json.loads(metrics.read_text())
    argv = [sys.executable, "-m", "lightnets", "train", "--data", data, "--model", model]
    argv += ["--img-size", "32", "--epochs", str(epochs), "--seed", str(seed), "--no-progress"]
    argv += ["--run-dir", str(run_dir), *SETTINGS[setting], *extra]
    if (run_dir / "config.json").is_file():
        argv = [
            sys.executable,
            "-m",
            "lightnets",
            "train",
            "--resume",
            str(run_dir),
            "--no-progress",
        ]
    print(" ".join(argv[1:]), file=sys.stderr, flush=True)
    subprocess.run(argv, check=True)
    return json.loads(metrics.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--models", nargs="+", default=["mixnet_s", "mobilenet_v2_w035"])
    p.add_argument("--settings", nargs="+", default=["old", "new"], choices=list(SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("-o", "--output", default="runs/recipes")
    p.add_argument("extra", nargs="*", help="flags for every run (after --)")
    args = p.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for setting in args.settings:
        for model in args.models:
            histories = [
                run_one(out, args.data, model, s, setting, args.epochs, args.extra)
                for s in args.seeds
            ]
            rows.append((setting, model, histories))
    print(f"val top-1 (%) after each of {args.epochs} epochs, seeds {args.seeds}, {args.data}")
    print("| setting | model | top-1 by epoch (mean) | final per seed | final mean ± std | img/s |")
    print("|---|---|---|---|---|---|")
    for setting, model, hists in rows:
        by_epoch = [statistics.mean(h[e]["val_acc"] for h in hists) for e in range(args.epochs)]
        finals = [h[-1]["val_acc"] for h in hists]
        std = statistics.stdev(finals) if len(finals) > 1 else 0.0
        speed = statistics.mean(statistics.mean(r["images_per_s"] for r in h) for h in hists)
        print(
            f"| {setting} | {model} | {' / '.join(f'{a:.1f}' for a in by_epoch)} | "
            f"{', '.join(f'{a:.2f}' for a in finals)} | {statistics.mean(finals):.2f} ± "
            f"{std:.2f} | {speed:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
