"""`lightnets export MODEL -o FILE`: a deployable artifact for one runtime and precision, verified
by running it.

    lightnets export mixnet_s --checkpoint RUN -o mixnet_s.onnx
    lightnets export mixnet_s --checkpoint RUN --runtime openvino --precision int8 -o m.xml
    lightnets export mixnet_s --checkpoint RUN --precision int8 --keep-float se -o m-int8.onnx

Runtimes: onnxruntime (default), openvino, executorch, litert, ncnn, torchscript; precisions fp32
(default), fp16, bf16, int8 where the runtime has them (lightnets.deploy.targets). The model is re-
parameterized first for the runtimes that gain from it (BN folded, mixed depthwise convs merged into
one conv; --no-reparameterize keeps the training graph, not for int8); ExecuTorch and LiteRT get it
as trained (XNNPACK folds BN and runs split depthwise convs faster). int8 is post-training static
quantization with the runtime's own quantizer (7-bit per-channel weights, see docs/deploy.md),
calibrated on --calibration-images images from --calibrate DIR (default: the run's training images)
read through the model's own preprocessing; --keep-float se,act,dw,dw-large,first,last leaves those
layers in float.

Every artifact is checked: fp32 within --rtol of PyTorch on random input (batches 1 and 3, so a
dynamic batch axis is exercised), fp16/bf16 within a looser tolerance, int8 by top-1 agreement and
logit cosine with the fp32 model on the calibration images; below the thresholds the command fails.
The preprocessing (mean, std, size, crop, channel order), class names, precision and verification go
into a sidecar <FILE>.json, and into the file itself where the format has room (ONNX metadata,
OpenVINO rt_info).
"""

from __future__ import annotations

import argparse
import importlib.util
from argparse import SUPPRESS
from pathlib import Path

from lightnets.commands import _flags
from lightnets.deploy.targets import TARGETS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lightnets export",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "model",
        nargs="?",
        help="registered model name or alias (default: the checkpoint's), or a run dir / weights "
        "file",
    )
    _flags.add_output(p, required=True, help="file to write")
    _flags.add_checkpoint(p)
    _flags.add_arch(p)
    p.add_argument(
        "--runtime",
        default="onnxruntime",
        help=f"what the file is for: {', '.join(TARGETS)} (default onnxruntime)",
    )
    p.add_argument(
        "--precision", default="fp32", help="fp32 (default), fp16, bf16 or int8, as the runtime has"
    )
    _add_int8_options(p)
    # deprecated (_flags.OLD_FLAGS): until 0.1 `--format onnx|torchscript` chose the file
    p.add_argument("--format", dest="old_format", choices=("onnx", "torchscript"), help=SUPPRESS)
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    _flags.add_img_size(p, help="input side of the example (default: checkpoint, else card)")
    p.add_argument(
        "--no-reparameterize",
        dest="reparameterize",
        action="store_false",
        help="export the training graph (split convs, BatchNorm) as it is",
    )
    p.add_argument(
        "--exporter",
        choices=("auto", "dynamo", "torchscript"),
        default="auto",
        help="torch.onnx exporter for onnxruntime fp32 (auto: TorchScript-based for opset <= 17)",
    )
    p.add_argument(
        "--rtol",
        type=_flags.positive_float,
        default=None,
        help="largest relative error accepted (default: 1e-4 for fp32, 3e-2 fp16, 1e-1 bf16)",
    )
    p.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")
    return p


def _add_int8_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--calibrate", metavar="DIR", help="int8: calibration images (default: the run's)"
    )
    p.add_argument(
        "--calibration-images",
        type=_flags.positive_int,
        default=200,
        metavar="N",
        help="int8: how many images to calibrate on (default 200)",
    )
    p.add_argument(
        "--keep-float",
        metavar="KINDS",
        help="int8: layers to keep in float, comma-separated: se, act, dw, dw-large, first, last",
    )
    p.add_argument(
        "--quantizer",
        choices=("ort", "nncf"),
        default="ort",
        help="onnxruntime int8: ort (quantize_static, the default) or nncf (bias correction: "
        "more accurate, but ORT on x86 runs its graph ~5x slower)",
    )


def main(argv: list[str] | None = None) -> int:
    from lightnets.checkpoints import load_checkpoint
    from lightnets.deploy import artifacts, targets
    from lightnets.files import check_writable

    parser = build_parser()
    args = _flags.parse_args(parser, argv)
    _model_and_runtime(parser, args)
    target, keep_float = _checked_choices(args)
    path = Path(args.output)
    check_writable(path, "-o")
    if args.runtime == "onnxruntime":
        from lightnets.deploy.onnx import check_opset

        check_opset(args.opset)
    targets.require(target)
    loaded = load_checkpoint(
        args.checkpoint,
        args.model,
        prefer_ema=not args.no_ema,
        img_size=args.img_size,
        arch=args.arch,
    )
    size = artifacts.check_img_size(loaded)
    calibration = _calibration(args, loaded) if args.precision == "int8" else None
    metadata = artifacts.export_verified(
        loaded,
        args.runtime,
        args.precision,
        path,
        deployed=_deployed(args, target, loaded),
        calibration=calibration,
        keep_float=keep_float,
        quantize={"quantizer": args.quantizer} if args.quantizer != "ort" else None,
        rtol=args.rtol,
        extra=_onnx_options(args),
    )
    _print_written(args, path, metadata, loaded.in_chans, size)
    return 0


def _model_and_runtime(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """MODEL, --checkpoint and --arch resolved into args.model / args.checkpoint; the
    deprecated --format onnx|torchscript into --runtime."""
    args.checkpoint, args.model = _flags.model_or_run(args.model, args.checkpoint)
    args.model = _flags.model_for_arch(args.model, args.arch, "MODEL")
    if args.model is None and args.checkpoint is None:
        parser.error("name a MODEL or give a --checkpoint")
    if args.old_format:
        args.runtime = {"onnx": "onnxruntime"}.get(args.old_format, args.old_format)
        _flags.note_deprecated(parser.prog, "--format", f"--runtime {args.runtime}")


def _deployed(args, target, loaded):
    """The module to export: re-parameterized for the runtimes that gain from it."""
    if not (args.reparameterize and target.reparameterize):
        return loaded.model
    from lightnets.deploy import reparameterize

    deployed = reparameterize(loaded.model)
    print(f"re-parameterized: {deployed.reparam_report.summary()}")
    return deployed


def _onnx_options(args) -> dict | None:
    """export_verified's `extra` for the ONNX exporter: --opset and --exporter when not default."""
    options = {"opset": args.opset} if args.opset != 17 else {}
    if args.exporter != "auto":
        options["dynamo"] = args.exporter == "dynamo"
    return {"onnx": options} if options else None


def _print_written(args, path: Path, metadata: dict, in_chans: int, size: int) -> None:
    """What was kept in float, the ONNX ops, and the artifact with its check."""
    from lightnets.deploy import sidecar
    from lightnets.deploy.checks import Verification

    if "quantization" in metadata:
        kept = metadata["quantization"]["kept_float"]
        print("kept in float: " + (", ".join(f"{k} {n}" for k, n in kept.items()) or "-"))
    if args.runtime == "onnxruntime":
        from lightnets.deploy.onnx import op_counts

        ops = sorted(op_counts(path).items(), key=lambda kv: -kv[1])
        print("ops: " + ", ".join(f"{op} {n}" for op, n in ops))
    check = Verification.from_dict(metadata["verification"]).summary()
    size_mb = sum(p.stat().st_size for p in sidecar.artifact_files(path)) / 1e6
    print(
        f"wrote {path} ({size_mb:.1f} MB, {args.runtime} {args.precision}, input (N, "
        f"{in_chans}, {size}, {size})) and {sidecar.sidecar_path(path).name}; {check} "
        f"on {metadata['verification']['cpu_class']}"
    )


def _checked_choices(args):
    """(target, --keep-float kinds): runtime, precision and the int8 options checked together,
    before anything is loaded."""
    from lightnets.deploy import targets
    from lightnets.deploy.quant_graph import parse_keep_float
    from lightnets.errors import ConfigError, MissingDependencyError

    target = targets.get_target(args.runtime)
    targets.check_precision(target, args.precision)
    keep_float = parse_keep_float(args.keep_float)
    if keep_float and args.precision != "int8":
        raise ConfigError("--keep-float only applies to --precision int8")
    if args.precision == "int8" and target.reparameterize and not args.reparameterize:
        raise ConfigError("int8 quantizes the folded graph: drop --no-reparameterize")
    if args.quantizer != "ort" and (args.runtime, args.precision) != ("onnxruntime", "int8"):
        raise ConfigError("--quantizer chooses the quantizer of onnxruntime int8 only")
    if args.quantizer == "nncf" and importlib.util.find_spec("nncf") is None:
        raise MissingDependencyError("--quantizer nncf needs nncf: pip install lightnets[openvino]")
    return target, keep_float


def _calibration(args, loaded):
    """The int8 calibration batches: --calibrate, else the run's training images."""
    from lightnets.deploy import calibration
    from lightnets.errors import ConfigError

    folder = calibration.calibration_dir(loaded, args.calibrate)
    if folder is None:
        raise ConfigError(
            "int8 needs calibration images: pass --calibrate DIR (this checkpoint names no "
            "training image folder)"
        )
    files = calibration.calibration_files(folder, args.calibration_images)
    print(f"calibrating on {len(files)} images from {folder}")
    return calibration.calibration_batches(files, loaded.preprocessing, loaded.in_chans)
