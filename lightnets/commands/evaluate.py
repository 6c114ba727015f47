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
import dataclasses
import json
import sys
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


def main(argv: list[str] | None = None) -> int:
    import torch

    from lightnets.checkpoints import load_checkpoint
    from lightnets.cpu import cpu_threads
    from lightnets.errors import ConfigError
    from lightnets.train import data as data_mod
    from lightnets.train.config import TrainConfig
    from lightnets.train.distributed import pick_device
    from lightnets.train.evaluate import eval_dataset, evaluate, plot_confusion

    parser = build_parser()
    args = _flags.parse_args(parser, argv)
    if args.model is not None:
        from lightnets.deploy.targets import is_artifact

        if is_artifact(args.model):
            return _eval_artifact(args)
    if args.checkpoint is None:
        parser.error("the following arguments are required: --checkpoint (or --model ARTIFACT)")
    device = pick_device(args.device)
    name = _flags.model_for_arch(args.model, args.arch)
    loaded = load_checkpoint(
        args.checkpoint, name, prefer_ema=not args.no_ema, device=device, arch=args.arch
    )
    cfg = TrainConfig.from_dict(loaded.config, f"{args.checkpoint} config")
    cfg = dataclasses.replace(cfg, model=loaded.name, in_chans=loaded.in_chans, pretrained=None)
    data = args.data or (cfg.data if loaded.config else None)
    if data is None:
        raise ConfigError(f"--checkpoint {args.checkpoint} carries no training config: pass --data")
    png = _confusion_path(args.output, loaded.source, data, cfg.data if loaded.config else None)
    if png.parent.exists():
        from lightnets.files import check_writable

        check_writable(png, "-o")
    dataset, skipped = eval_dataset(
        cfg, data, loaded.class_names, loaded.preprocessing, args.strict
    )
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(0, args.workers))
    loader = data_mod.make_loader(
        dataset, args.batch_size, train=False, seed=0, workers=args.workers
    )
    pre = loaded.preprocessing
    res = evaluate(
        loaded.model,
        loader,
        device=device,
        mean=torch.tensor(pre.mean, device=device).view(1, -1, 1, 1),
        std=torch.tensor(pre.std, device=device).view(1, -1, 1, 1),
        num_classes=len(loaded.class_names),
        confusion=True,
    )
    matrix = res.pop("confusion")
    per_class = {
        name: (100 * float(matrix[i, i]) / float(matrix[i].sum()) if matrix[i].sum() else None)
        for i, name in enumerate(loaded.class_names)
    }
    skipped = skipped + res.pop("skipped")
    png.parent.mkdir(parents=True, exist_ok=True)
    note = plot_confusion(matrix, loaded.class_names, png)
    if len(loaded.class_names) <= 5:
        res.pop("top5", None)  # every class is in the top 5: always 100%, says nothing
    result = {
        "model": loaded.name,
        "checkpoint": args.checkpoint,
        "data": str(data),
        **res,
        "per_class": per_class,
        "confusion": matrix.tolist(),
        "skipped": skipped,
        "confusion_png": None if note else str(png),
    }
    if args.format == "json":
        print(json.dumps(result, indent=1))
    else:
        _print_table(result, loaded.class_names)
    if note:
        print(note, file=sys.stderr)
    if skipped:
        print(
            f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5]),
            file=sys.stderr,
        )
    return 0


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


def _eval_artifact(args) -> int:
    """Top-1/top-5 of an exported artifact; beside its PyTorch model when --checkpoint is given."""
    import dataclasses

    import torch

    from lightnets.checkpoints import Preprocessing, load_checkpoint
    from lightnets.cpu_class import cpu_class
    from lightnets.deploy import checks, targets
    from lightnets.errors import CheckpointError, ConfigError
    from lightnets.train import data as data_mod
    from lightnets.train.config import TrainConfig
    from lightnets.train.evaluate import eval_dataset, evaluate

    path = Path(args.model)
    target = targets.require(targets.target_for_artifact(path))
    meta = _artifact_metadata(path)
    if args.data is None:
        raise ConfigError(f"--model {path}: an artifact carries no data folder, pass --data")
    pre = Preprocessing(meta["img_size"], meta["crop_pct"], tuple(meta["mean"]), tuple(meta["std"]))
    class_names = list(meta["class_names"])
    in_chans = int(meta.get("in_chans", 3))
    loaded = None
    if args.checkpoint is not None:
        loaded = load_checkpoint(args.checkpoint, None, prefer_ema=not args.no_ema)
        if loaded.name != meta["model_name"]:
            raise CheckpointError(
                f"--model {path} was exported from {meta['model_name']}, but --checkpoint "
                f"{args.checkpoint} holds {loaded.name}"
            )
        if list(loaded.class_names) != class_names:
            raise CheckpointError(
                f"--model {path} has {len(class_names)} classes, --checkpoint {args.checkpoint} "
                f"{len(loaded.class_names)}: they are not the same model"
            )
    # loaded (and run once) before any data-loader worker starts, so a bad file is one line
    shape = (meta.get("batch") or 1, in_chans, pre.img_size, pre.img_size)
    run = targets.load_artifact(target, path, shape, args.threads)
    verified_on, here = meta.get("verification", {}).get("cpu_class"), cpu_class()
    if verified_on and verified_on != here:
        print(
            f"note: {path.name} was verified on {verified_on}, this CPU is {here}: int8/bf16 "
            f"kernels differ between them; `lightnets verify {path}` checks it here",
            file=sys.stderr,
        )
    module = checks.ArtifactModule(run, meta.get("batch"))
    inside = targets.embedded_metadata(path, target.runtime)
    if "class_names" in inside and list(inside["class_names"]) != class_names:
        raise CheckpointError(
            f"--model {path}: its sidecar lists the classes {class_names}, the artifact itself "
            f"{list(inside['class_names'])}; re-export it, or restore the sidecar"
        )
    cfg = TrainConfig.from_dict({}, "defaults")
    cfg = dataclasses.replace(cfg, model=meta["model_name"], in_chans=in_chans, pretrained=None)
    dataset, skipped = eval_dataset(cfg, args.data, class_names, pre, args.strict)
    loader = data_mod.make_loader(
        dataset, args.batch_size, train=False, seed=0, workers=args.workers
    )
    mean = torch.tensor(pre.mean).view(1, -1, 1, 1)
    std = torch.tensor(pre.std).view(1, -1, 1, 1)
    common = dict(device="cpu", mean=mean, std=std, num_classes=len(class_names))
    res = evaluate(module, loader, **common)
    skipped = skipped + res.pop("skipped")
    result = {
        "model": meta["model_name"],
        "artifact": str(path),
        "runtime": target.runtime,
        "precision": meta.get("precision"),
        "data": str(args.data),
        **res,
        "skipped": skipped,
    }
    if loaded is not None:
        eager = evaluate(loaded.model, loader, **common)
        result["pytorch_top1"] = eager["top1"]
        result["top1_drop"] = eager["top1"] - res["top1"]
    if len(class_names) <= 5:
        result.pop("top5", None)
    if args.format == "json":
        print(json.dumps(result, indent=1))
    else:
        top5 = f"  top-5 {result['top5']:.2f}%" if "top5" in result else ""
        print(
            f"{result['model']} ({target.runtime} {result['precision']}, {path.name}): top-1 "
            f"{result['top1']:.2f}%{top5}  loss {result['loss']:.4f}  on {result['images']} "
            f"images  {result['images_per_s']:.0f} img/s"
        )
        if loaded is not None:
            print(
                f"PyTorch {loaded.name}: top-1 {result['pytorch_top1']:.2f}%  drop "
                f"{result['top1_drop']:+.2f} points"
            )
    if skipped:
        print(
            f"skipped {len(skipped)} unreadable image(s): " + "; ".join(skipped[:5]),
            file=sys.stderr,
        )
    return 0


def _artifact_metadata(path: Path) -> dict:
    """The sidecar; for an ONNX file exported before sidecars existed, its metadata_props."""
    from lightnets.deploy import sidecar
    from lightnets.errors import ConfigError

    if sidecar.sidecar_path(path).is_file() or path.suffix != ".onnx":
        meta = sidecar.read_sidecar(path)
    else:
        from lightnets.deploy.loaders import read_onnx_metadata

        meta = {k: sidecar.json_or_text(v) for k, v in read_onnx_metadata(path).items()}
        if "input_size" in meta:
            meta["in_chans"], meta["img_size"] = meta["input_size"][0], meta["input_size"][1]
    missing = [
        k
        for k in ("model_name", "img_size", "crop_pct", "mean", "std", "class_names")
        if k not in meta
    ]
    if missing:
        raise ConfigError(f"--model {path}: its metadata lacks {', '.join(missing)}")
    return meta
