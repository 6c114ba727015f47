"""Training images/s of whole `lightnets train` runs with their default flags: this checkout against
an earlier one (the baseline), interleaved repeats in one process, each run a fresh subprocess.

    git worktree add /tmp/before 6aaf679          # the code to compare against
    python benchmarks/train_speed.py --data cifar10-5k --before /tmp/before \\
        --models mixnet_s mobilenet_v2_w035 --images-per-class 200 --repeats 3

cifar10-5k is the docs' CIFAR-10 subset (400 training and 100 validation photos a class, 32 px,
both from CIFAR-10's training set): `python benchmarks/cifar10_subset.py cifar-10-binary.tar.gz
cifar10-5k` makes it from CIFAR-10's binary release.

Every run trains 1 epoch at 32 px with only `--model --data --img-size --epochs` set (what a new
user types), so the figure includes the defaults each version chooses: threads, DataLoader workers,
image cache, memory format. images/s is the training phase's (metrics.json), min and median over
repeats; `--variant NAME=FLAGS` adds runs of this checkout with extra flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lightnets.compare.data import subset_folder


def one_run(src: str | None, model: str, data: Path, flags: list[str], run_dir: Path) -> float:
    env = dict(os.environ)
    if src:  # the earlier checkout's package shadows the installed one
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "lightnets", "train", "--model", model, "--data", str(data)]
    cmd += ["--img-size", "32", "--epochs", "1", "--no-progress", "--run-dir", str(run_dir), *flags]
    # cwd: `python -m` puts it first on sys.path, ahead of PYTHONPATH
    subprocess.run(cmd, check=True, env=env, cwd=run_dir.parent, stdout=subprocess.DEVNULL)
    (epoch,) = json.loads((run_dir / "metrics.json").read_text())
    return float(epoch["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="image folder root/train/<class>/")
    parser.add_argument("--before", help="checkout of the earlier code (its root directory)")
    parser.add_argument("--models", nargs="+", default=["mixnet_s", "mobilenet_v2_w035"])
    parser.add_argument("--images-per-class", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="train-speed-"))
    data = subset_folder(args.data, args.images_per_class, work / "data")
    sides = {"before": (args.before, [])} if args.before else {}
    sides["now"] = (None, [])
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        sides[name] = (None, shlex.split(flags))
    speeds = {(m, s): [] for m in args.models for s in sides}
    for r in range(args.repeats):
        for model in args.models:
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for side in order:
                src, flags = sides[side]
                run_dir = work / f"{model}-{side}-{r}"
                speeds[(model, side)].append(one_run(src, model, data, flags, run_dir))
                shutil.rmtree(run_dir)
                print(
                    f"repeat {r + 1} {model} {side}: {speeds[(model, side)][-1]:.0f} img/s",
                    flush=True,
                )
    print(
        f"\n1 epoch of {args.images_per_class} images/class at 32 px, default flags, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    print("| model | code | train img/s min / median | vs before (median) |")
    print("|---|---|---|---|")
    for (model, side), values in speeds.items():
        base = speeds.get((model, "before"))
        ratio = f"{statistics.median(values) / statistics.median(base):.2f}x" if base else "-"
        print(
            f"| {model} | {side} | {min(values):.0f} / {statistics.median(values):.0f} | {ratio} |"
        )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
