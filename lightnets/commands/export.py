"""`lightnets export MODEL -o FILE`: ONNX or TorchScript for deployment, verified by running it.

The model is re-parameterized first (lightnets.deploy.reparameterize: BN folded, mixed depthwise
convs merged into one conv; --no-reparameterize keeps the training graph). The exported file must
reproduce the PyTorch model's output on random input (batches 1 and 3, so the dynamic batch axis
is exercised) within --rtol, else the command fails. ONNX files carry the preprocessing in their
metadata: mean, std, input size, crop_pct, and the class names when the checkpoint has them.
"""

from __future__ import annotations

import argparse
import sys
from argparse import SUPPRESS
from pathlib import Path

from lightnets.commands import _flags

RUNTIMES = ("onnxruntime", "torchscript")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightnets export", description=__doc__)
    p.add_argument(
        "model", nargs="?", help="registered model name or alias (default: the checkpoint's)"
    )
    _flags.add_output(p, required=True, help="file to write")
    _flags.add_checkpoint(p)
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="onnxruntime",
        help="what the file is for: an ONNX model checked with onnxruntime, or TorchScript",
    )
    # until 0.1 `--format onnx|torchscript` chose the file; --format now means table formats
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
        help="torch.onnx exporter (auto: TorchScript-based for opset <= 17, dynamo above)",
    )
    p.add_argument(
        "--rtol", type=_flags.positive_float, default=1e-4, help="largest relative error accepted"
    )
    p.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")
    return p


def main(argv: list[str] | None = None) -> int:
    import lightnets
    from lightnets.checkpoints import load_checkpoint
    from lightnets.errors import ConfigError
    from lightnets.files import check_writable

    parser = build_parser()
    args = _flags.parse_args(parser, argv)
    if args.model is None and args.checkpoint is None:
        parser.error("name a MODEL or give a --checkpoint")
    if args.old_format:
        args.runtime = {"onnx": "onnxruntime"}.get(args.old_format, args.old_format)
        print(
            f"lightnets export: note: --format is deprecated, use --runtime {args.runtime}",
            file=sys.stderr,
        )
    path = Path(args.output)
    check_writable(path, "-o")
    if args.runtime == "onnxruntime":
        import importlib.util

        from lightnets.deploy.onnx import check_opset
        from lightnets.errors import MissingDependencyError

        check_opset(args.opset)
        if importlib.util.find_spec("onnxruntime") is None:
            raise MissingDependencyError(
                "ONNX export needs onnxruntime: pip install lightnets[onnx]"
            )
    loaded = load_checkpoint(
        args.checkpoint, args.model, prefer_ema=not args.no_ema, img_size=args.img_size
    )
    size = loaded.preprocessing.img_size
    min_input = getattr(loaded.model, "min_input", lightnets.model_card(loaded.name).min_input)
    if size < min_input:
        raise ConfigError(f"--img-size {size}: {loaded.name} needs at least {min_input} px")
    deployed = loaded.model
    if args.reparameterize:
        from lightnets.deploy import reparameterize

        deployed = reparameterize(loaded.model)
        print(f"re-parameterized: {deployed.reparam_report.summary()}")
    if args.runtime == "onnxruntime":
        from lightnets.deploy.onnx import export_onnx, op_counts

        error = export_onnx(
            deployed,
            path,
            size,
            args.opset,
            metadata=_metadata(loaded, args.reparameterize),
            in_chans=loaded.in_chans,
            reference=loaded.model,
            rtol=args.rtol,
            dynamo=None if args.exporter == "auto" else args.exporter == "dynamo",
        )
        ops = sorted(op_counts(path).items(), key=lambda kv: -kv[1])
        print("ops: " + ", ".join(f"{op} {n}" for op, n in ops))
        runtime = "onnxruntime"
    else:
        from lightnets.deploy.torchscript import export_torchscript

        error = export_torchscript(deployed, path, loaded.in_chans, size, loaded.model, args.rtol)
        runtime = "TorchScript"
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, input (N, {loaded.in_chans}, {size}, "
        f"{size})); {runtime} vs PyTorch: relative error {error:.1e} <= {args.rtol:.0e}"
    )
    return 0


def _metadata(loaded, reparameterized: bool) -> dict:
    """What a deployment needs to feed the file: preprocessing, classes, provenance."""
    import lightnets

    pre, card = loaded.preprocessing, lightnets.model_card(loaded.name)
    metadata = {
        "model_name": loaded.name,
        "paper": card.paper,
        "input_size": [loaded.in_chans, pre.img_size, pre.img_size],
        "mean": list(pre.mean),
        "std": list(pre.std),
        "crop_pct": pre.crop_pct,
        "lightnets_version": lightnets.__version__,
        "reparameterized": reparameterized,
    }
    if loaded.config:  # class names of a trained run; a random or timm model has indices
        metadata["class_names"] = loaded.class_names
    return metadata
