"""`lightnets eval`: top-1/top-5, per-class accuracy, confusion matrix and images/s of a checkpoint
or of an exported artifact.

    lightnets eval --checkpoint runs/mixnet_s-flowers-20250101-120000 [--data DIR] [--format json]
    lightnets eval --model mixnet_s-int8.onnx --data DIR [--checkpoint RUN]

The checkpoint (a run dir, a checkpoint dir or a weights file) carries the training config and
class names, so the model, preprocessing and data default to those of the run. A weights file
without that metadata needs --model and --data. The confusion matrix is drawn next to the weights
as confusion.png for the run's own data and confusion-<DATA>.png for any other folder, so
evaluating on other data never replaces the run's picture.

--model ARTIFACT evaluates a file written by `lightnets export` (ONNX, OpenVINO .xml, .pte,
.tflite, .ncnn.param, TorchScript .pt) in its runtime, fed through the same preprocessing as the
PyTorch eval (read from the artifact's sidecar <FILE>.json). With --checkpoint as well, the PyTorch
model is evaluated beside it and the accuracy drop is reported; the artifact must come from that
model.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lightnets import rundir
from lightnets.commands import _flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightnets eval", description=__doc__.split("\n\n")[0])
    _flags.add_checkpoint(p)
    p.add_argument("--data", help="labelled images (default: the run's data)")
    p.add_argument(
        "--model", help="model name (default: the run's), or an exported artifact file to evaluate"
    )
    _flags.add_arch(p)
    p.add_argument(
        "--threads", type=_flags.positive_int, help="runtime threads for an artifact (default: all)"
    )
    p.add_argument("--batch-size", type=_flags.positive_int, default=128)
    p.add_argument("--workers", type=_flags.nonnegative_int, default=2)
    _flags.add_device(p)
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    _flags.add_output(
        p, help="folder for the confusion matrix PNG (default: next to the weights)", old=("--out",)
    )
    _flags.add_format(p, choices=("table", "json"))
    return p


@dataclass
class Subject:
    """What `eval` evaluates, however it was named: a checkpoint's model or an artifact."""

    model: object  # an nn.Module, or an artifact as one (lightnets.deploy.checks.ArtifactModule)
    name: str  # its registry name
    class_names: list[str]
    pre: object  # lightnets.preprocess.Preprocessing: the checkpoint's, or the artifact's sidecar
    data: str
    fields: dict  # the result's first fields: what was evaluated
    split: dict = field(default_factory=dict)  # eval_images' dataset, val_split, seed
    device: object = "cpu"
    confusion_png: Path | None = None  # checkpoints: where the confusion matrix goes
    reference: object = None  # artifacts with --checkpoint: the PyTorch model, evaluated beside


def main(argv: list[str] | None = None) -> int:
    from lightnets.evaluation import eval_images

    parser = build_parser()
    args = _flags.parse_args(parser, argv)
    if args.model is not None and _is_artifact(args.model):
        subject = _artifact(args)
    elif args.checkpoint is None:
        parser.error("the following arguments are required: --checkpoint (or --model ARTIFACT)")
    else:
        subject = _checkpoint(args)
    images = eval_images(
        subject.data, subject.class_names, subject.pre, strict=args.strict, **subject.split
    )
    result, note = _evaluate(args, subject, images)
    if args.format == "json":
        print(json.dumps(result, indent=1))
    elif "artifact" in result:
        _print_artifact(result, subject)
    else:
        _print_table(result, subject.class_names)
    if note:
        print(note, file=sys.stderr)
    if result["skipped"]:
        skipped = result["skipped"]
        print(
            f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5]),
            file=sys.stderr,
        )
    return 0


def _is_artifact(model: str) -> bool:
    from lightnets.deploy.targets import is_artifact

    return is_artifact(model)


def _evaluate(args, subject: Subject, images) -> tuple[dict, str | None]:
    """The result of `subject` on `images` (and of its reference beside it); the note of a
    confusion matrix that could not be drawn."""
    import torch

    from lightnets.cpu import cpu_threads
    from lightnets.evaluation import evaluate_on, per_class_accuracy, plot_confusion

    if torch.device(subject.device).type == "cpu":
        torch.set_num_threads(cpu_threads(0, args.workers))
    common = dict(batch_size=args.batch_size, workers=args.workers, device=subject.device)
    res = evaluate_on(subject.model, images, confusion=subject.confusion_png is not None, **common)
    result, note = {**subject.fields, "data": str(subject.data), **res}, None
    if subject.reference is not None:
        eager = evaluate_on(subject.reference, images, **common)
        result["pytorch_top1"] = eager["top1"]
        result["top1_drop"] = eager["top1"] - res["top1"]
    if len(subject.class_names) <= 5:
        result.pop("top5", None)  # every class is in the top 5: always 100%, says nothing
    if subject.confusion_png is not None:
        matrix, png = result.pop("confusion"), subject.confusion_png
        png.parent.mkdir(parents=True, exist_ok=True)
        note = plot_confusion(matrix, subject.class_names, png)
        result["per_class"] = per_class_accuracy(matrix, subject.class_names)
        result["confusion"] = matrix.tolist()
        result["skipped"] = result.pop("skipped")
        result["confusion_png"] = None if note else str(png)
    return result, note


def _checkpoint(args) -> Subject:
    """A checkpoint's model, evaluated on --data (default: the run's own data, its val split)."""
    from lightnets.checkpoints import load_checkpoint
    from lightnets.errors import ConfigError
    from lightnets.files import check_writable
    from lightnets.train.distributed import pick_device

    device = pick_device(args.device)
    name = _flags.model_for_arch(args.model, args.arch)
    loaded = load_checkpoint(
        args.checkpoint, name, prefer_ema=not args.no_ema, device=device, arch=args.arch
    )
    run = loaded.config  # the run's TrainConfig as saved; {} for a plain weights file
    data = args.data or run.get("data")
    if data is None:
        raise ConfigError(f"--checkpoint {args.checkpoint} carries no training config: pass --data")
    png = _confusion_path(args.output, loaded.source, data, run.get("data"))
    if png.parent.exists():
        check_writable(png, "-o")
    split = {"val_split": run.get("val_split", 0.2), "seed": run.get("seed", 0)}
    split["dataset"] = run.get("dataset", "auto") if data == run.get("data") else "auto"
    fields = {"model": loaded.name, "checkpoint": args.checkpoint}
    return Subject(loaded.model, loaded.name, loaded.class_names, loaded.preprocessing, data,
                   fields, split, device, png)  # fmt: skip


def _confusion_path(output: str | None, weights: Path | None, data: str, run_data: str | None):
    folder = Path(output) if output else (weights.parent if weights else Path("."))
    folder = rundir.run_of(folder) or folder  # a run's picture goes in the run dir, beside curves
    if run_data is not None and Path(data).resolve() == Path(run_data).resolve():
        return folder / rundir.CONFUSION
    stem = Path(data).resolve().name or "data"
    return folder / f"confusion-{stem}.png"


def _print_table(result: dict, class_names: list[str]) -> None:
    top5 = f"  top-5 {result['top5']:.2f}%" if "top5" in result else ""
    print(
        f"{result['model']}: top-1 {result['top1']:.2f}%{top5}  loss {result['loss']:.4f}  "
        f"on {result['images']} images  {result['images_per_s']:.0f} img/s"
    )
    width = max(map(len, class_names))
    for name, acc in result["per_class"].items():
        print(f"  {name:<{width}}  {'-' if acc is None else f'{acc:6.2f}%'}")
    if result["confusion_png"]:
        print(f"confusion matrix: {result['confusion_png']}")


def _artifact(args) -> Subject:
    """An exported artifact, run in its runtime and fed through the preprocessing its sidecar
    names; with --checkpoint, that checkpoint's PyTorch model is evaluated beside it."""
    from lightnets.cpu_class import cpu_class
    from lightnets.deploy import checks, targets
    from lightnets.errors import ConfigError
    from lightnets.preprocess import Preprocessing

    path = Path(args.model)
    target = targets.require(targets.target_for_artifact(path))
    meta = targets.read_artifact_metadata(path)
    if args.data is None:
        raise ConfigError(f"--model {path}: an artifact carries no data folder, pass --data")
    pre, class_names = Preprocessing.from_dict(meta), list(meta["class_names"])
    reference = _reference_model(args, path, meta) if args.checkpoint is not None else None
    # loaded (and run once) before any data-loader worker starts, so a bad file is one line
    shape = (meta.get("batch") or 1, int(meta.get("in_chans", 3)), pre.img_size, pre.img_size)
    run = targets.load_artifact(target, path, shape, args.threads)
    verified_on, here = meta.get("verification", {}).get("cpu_class"), cpu_class()
    if verified_on and verified_on != here:
        print(
            f"note: {path.name} was verified on {verified_on}, this CPU is {here}: int8/bf16 "
            f"kernels differ between them; `lightnets verify {path}` checks it here",
            file=sys.stderr,
        )
    inside = targets.embedded_metadata(path, target.runtime)
    if "class_names" in inside and list(inside["class_names"]) != class_names:
        raise ConfigError(
            f"--model {path}: its sidecar lists the classes {class_names}, the artifact itself "
            f"{list(inside['class_names'])}; re-export it, or restore the sidecar"
        )
    fields = {"model": meta["model_name"], "artifact": str(path), "runtime": target.runtime,
              "precision": meta.get("precision")}  # fmt: skip
    module = checks.ArtifactModule(run, meta.get("batch"))
    return Subject(module, meta["model_name"], class_names, pre, args.data, fields,
                   reference=reference)  # fmt: skip


def _reference_model(args, path: Path, meta: dict):
    """The PyTorch model of --checkpoint, which must be the one the artifact was exported from."""
    from lightnets.checkpoints import load_checkpoint
    from lightnets.errors import CheckpointError

    loaded = load_checkpoint(args.checkpoint, None, prefer_ema=not args.no_ema)
    if loaded.name != meta["model_name"]:
        raise CheckpointError(
            f"--model {path} was exported from {meta['model_name']}, but --checkpoint "
            f"{args.checkpoint} holds {loaded.name}"
        )
    if list(loaded.class_names) != list(meta["class_names"]):
        raise CheckpointError(
            f"--model {path} has {len(meta['class_names'])} classes, --checkpoint "
            f"{args.checkpoint} {len(loaded.class_names)}: they are not the same model"
        )
    return loaded.model


def _print_artifact(result: dict, subject: Subject) -> None:
    top5 = f"  top-5 {result['top5']:.2f}%" if "top5" in result else ""
    print(
        f"{result['model']} ({result['runtime']} {result['precision']}, "
        f"{Path(result['artifact']).name}): top-1 {result['top1']:.2f}%{top5}  loss "
        f"{result['loss']:.4f}  on {result['images']} images  {result['images_per_s']:.0f} img/s"
    )
    if subject.reference is not None:
        print(
            f"PyTorch {subject.name}: top-1 {result['pytorch_top1']:.2f}%  drop "
            f"{result['top1_drop']:+.2f} points"
        )
