"""What `lightnets compare` costs on top of the training it schedules: the wall time of one compare
against the same trials run as `lightnets train` commands back to back, interleaved repeats.

    python benchmarks/compare_overhead.py --data cifar10-5k --images-per-class 40 \\
        --models mobilenet_v2_w035 vgnet_g_1_0mp --seeds 2 --epochs 1 --repeats 3

cifar10-5k is the docs' CIFAR-10 subset (400 training and 100 validation photos a class, 32 px,
both from CIFAR-10's training set): `python benchmarks/cifar10_subset.py cifar-10-binary.tar.gz
cifar10-5k` makes it from CIFAR-10's binary release.

Both sides train the same models x seeds with the same flags and threads; the compare reserves every
core per trial (`--cpus-per-trial`, default all), so it runs its trials one at a time like the
baseline, and skips the latency measurement (`--no-latency`: the baseline times nothing either).
What remains is Ray's start and stop, the trial processes' bookkeeping, MAC counting and the
results table. Each repeat starts from empty output directories; the order alternates (ABBA).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightnets.compare.data import subset_folder


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def back_to_back(args, data: Path, out: Path) -> float:
    """Every trial as its own `lightnets train` command, one after the other."""
    start = time.perf_counter()
    for model in args.models:
        for seed in range(args.seeds):
            cmd = [sys.executable, "-m", "lightnets", "train", "--model", model]
            cmd += ["--data", str(data), "--img-size", str(args.img_size), "--seed", str(seed)]
            cmd += ["--epochs", str(args.epochs), "--deterministic", "--no-progress"]
            cmd += ["--threads", str(args.cpus), "--workers", "0"]
            cmd += ["--run-dir", str(out / f"{model}-s{seed}")]
            timed(cmd)
    return time.perf_counter() - start


def one_compare(args, data: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "lightnets", "compare", *args.models, "--data", str(data)]
    cmd += ["--img-size", str(args.img_size), "--seeds", str(args.seeds)]
    cmd += ["--epochs", str(args.epochs), "--cpus-per-trial", str(args.cpus)]
    cmd += ["--no-latency", "--no-progress", "-o", str(out)]
    return timed(cmd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="image folder root/train/<class>/")
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2_w035", "vgnet_g_1_0mp"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--images-per-class", type=int, default=40)
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="compare-overhead-"))
    # one subset for both sides (the compare would otherwise build its own copy of the links)
    data = subset_folder(args.data, args.images_per_class, work / "data")
    times = {"train x N": [], "compare": []}
    for r in range(args.repeats):
        order = ["train x N", "compare"] if r % 2 == 0 else ["compare", "train x N"]
        for side in order:
            out = work / f"{side.replace(' ', '')}-{r}"
            run = back_to_back if side == "train x N" else one_compare
            times[side].append(run(args, data, out))
            shutil.rmtree(out)
            print(f"repeat {r + 1}: {side:<9} {times[side][-1]:6.1f} s", flush=True)
    n = len(args.models) * args.seeds
    base, comp = times["train x N"], times["compare"]
    print(
        f"\n{n} trials ({', '.join(args.models)} x {args.seeds} seeds, {args.epochs} epoch(s), "
        f"{args.images_per_class} images/class, {args.cpus} CPU(s) per trial)"
    )
    print(f"{'':<10} {'min s':>7} {'median s':>9}")
    for side, values in times.items():
        print(f"{side:<10} {min(values):7.1f} {statistics.median(values):9.1f}")
    med_comp, med_base = statistics.median(comp), statistics.median(base)
    print(
        f"ratio      {min(comp) / min(base):7.3f} {med_comp / med_base:9.3f}"
        f"   (overhead per trial: {(med_comp - med_base) / n:.1f} s)"
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
