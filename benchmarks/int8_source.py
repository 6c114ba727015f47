"""Where an int8 artifact's error comes from: the quantized model, or the runtime's kernels.

For ExecuTorch and LiteRT the int8 model is a PT2E graph (fake-quantized in PyTorch) before the
runtime lowers it to int8 kernels. Running that graph in PyTorch ("simulation") beside the
artifact splits the artifact's distance from fp32 into the quantizer's part (simulation vs fp32)
and the kernels' part (artifact vs simulation). Figures: top-1 agreement and mean logit cosine on
held-out images, plus top-1 accuracy against the labels where the folder has them.

    python benchmarks/int8_source.py RUN --data DIR [--runtimes executorch,litert] [--images 200]

RUN is a `lightnets train` run dir; DIR an image folder (DIR/val/<class>/ is used when present).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from lightnets.checkpoints import load_checkpoint
from lightnets.cpu_class import cpu_class
from lightnets.data.folders import class_dirs, scan_folder
from lightnets.deploy import targets
from lightnets.deploy.executorch import batch_example, pt2e_int8
from lightnets.deploy.quantize import calibration_batches, calibration_files
from lightnets.deploy.reference import judge_int8

MAX_BATCH = 32  # the exporters' calibration bound


def held_out(data: Path, count: int, classes: list[str]):
    """Up to `count` images of DIR/val (or DIR), seeded, and their labels."""
    root = data / "val" if (data / "val").is_dir() else data
    if class_dirs(root) != sorted(classes):
        raise SystemExit(f"{root}: classes differ from the run's")
    paths, labels, _ = scan_folder(root, list(classes))
    order = np.random.default_rng(0).permutation(len(paths))[:count]
    return [paths[i] for i in order], np.array([labels[i] for i in order])


def simulation(runtime: str, model, example, calibration):
    """The PT2E graph the runtime lowers, run in PyTorch."""
    module = __import__(f"lightnets.deploy.{runtime}", fromlist=["int8_quantizer"])
    pair, dynamic = batch_example(example, MAX_BATCH)
    return pt2e_int8(model, pair, module.int8_quantizer(), calibration,
                     dynamic_shapes=dynamic, max_batch=MAX_BATCH)  # fmt: skip


def logits_of(fn, batches) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([np.asarray(fn(x), np.float32) for x in batches])


def pair(a: np.ndarray, b: np.ndarray) -> str:
    check = judge_int8(a, b, 0.9, 0.9)
    return f"{100 * check.agreement:5.1f}% / {check.cosine:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runtimes", default="executorch,litert")
    parser.add_argument("--images", type=int, default=200, help="held-out images")
    parser.add_argument("--calibration-images", type=int, default=200)
    args = parser.parse_args()

    loaded = load_checkpoint(args.run, None)
    model = loaded.model.eval()
    pre, chans = loaded.preprocessing, loaded.in_chans
    folder = (loaded.config or {}).get("data") or args.data
    calibration = calibration_batches(
        calibration_files(folder, args.calibration_images), pre, chans
    )
    paths, labels = held_out(args.data, args.images, loaded.class_names)
    images = calibration_batches(paths, pre, chans, batch=MAX_BATCH)
    example = images[0][:1]
    fp32 = logits_of(model, images)
    top1 = lambda logits: 100 * float((logits.argmax(1) == labels).mean())  # noqa: E731
    print(f"{loaded.name}, {len(labels)} held-out images of {args.data}, {cpu_class()}")
    print(f"fp32 top-1 {top1(fp32):.2f}%; pairs are top-1 agreement / mean logit cosine")
    print(
        "runtime    | sim vs fp32       | artifact vs sim   | artifact vs fp32  | top-1 sim / art"
    )
    for runtime in args.runtimes.split(","):
        target = targets.require(targets.get_target(runtime))
        sim = simulation(runtime, model, example, calibration)
        simulated = logits_of(sim, images)
        with tempfile.TemporaryDirectory() as tmp:
            path = target.export(model, Path(tmp) / f"m{target.suffix}", example, "int8",
                                 calibration, {})  # fmt: skip
            run = target.load(path, 1)
            artifact = np.concatenate([run(x.numpy()) for x in images])
        print(f"{runtime:10} | {pair(simulated, fp32)} | {pair(artifact, simulated)} | "
              f"{pair(artifact, fp32)} | {top1(simulated):.2f} / {top1(artifact):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
