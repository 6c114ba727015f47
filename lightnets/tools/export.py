"""`lightnets export MODEL -o FILE`: ONNX or TorchScript for deployment, verified by running it.

The model is re-parameterized first (lightnets.deploy.reparameterize: BN folded, mixed depthwise
convs merged into one conv; --no-reparameterize keeps the training graph). The exported file must
reproduce the PyTorch model's output on random input (batches 1 and 3, so the dynamic batch axis
is exercised) within --rtol, else the command fails. ONNX files carry the preprocessing in their
metadata: mean, std, input size, crop_pct, and the class names when the checkpoint has them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

import lightnets
from lightnets.errors import ConfigError
from lightnets.files import check_writable

FORMATS = ("onnx", "torchscript")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightnets export", description=__doc__)
    parser.add_argument("model", help="registered model name or alias (`lightnets models`)")
    parser.add_argument("-o", "--output", required=True, help="file to write")
    parser.add_argument(
        "--checkpoint",
        help="weights: .safetensors/.pth file, a training checkpoint dir or a run dir",
    )
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument(
        "--resolution", type=int, help="input side of the example (default: checkpoint or card)"
    )
    parser.add_argument(
        "--no-reparameterize",
        dest="reparameterize",
        action="store_false",
        help="export the training graph (split convs, BatchNorm) as it is",
    )
    parser.add_argument(
        "--exporter",
        choices=("auto", "dynamo", "torchscript"),
        default="auto",
        help="torch.onnx exporter (auto: TorchScript-based for opset <= 17, dynamo above)",
    )
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest relative error accepted")
    return parser


def read_checkpoint(path: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, metadata) from a weights file or a lightnets training checkpoint/run dir."""
    try:
        from lightnets.train.checkpoint import read_weights
    except ImportError:  # training extras not installed: plain weight files still work
        read_weights = None
    if read_weights is not None:
        return read_weights(path)
    from lightnets.weights import read_state_dict

    return read_state_dict(path), {}


def build(name: str, checkpoint: str | None, resolution: int | None) -> tuple[nn.Module, int, dict]:
    """The model (weights loaded), its input side, and the metadata to embed."""
    card = lightnets.model_card(name)  # KeyError with close matches for an unknown name
    state, ckpt_meta = read_checkpoint(checkpoint) if checkpoint else ({}, {})
    config = json.loads(ckpt_meta.get("config", "{}"))
    class_names = json.loads(ckpt_meta["class_names"]) if "class_names" in ckpt_meta else None
    size = resolution or config.get("img_size") or card.input_size
    kwargs = {"in_chans": config.get("in_chans", 3)}
    if card.embedding_dim is None:
        head = state.get("classifier.weight")
        kwargs["num_classes"] = head.shape[0] if head is not None else 1000
    small = config.get("small_input")
    trained_size = config.get("img_size")
    if small or (small is None and trained_size is not None and trained_size <= 64):
        kwargs["small_input"] = True  # the training CLI's rule: stride-1 stem for small images
    model = lightnets.create_model(name, **kwargs)
    if checkpoint:
        try:
            lightnets.load_weights(model, state)
        except ValueError as err:
            raise ConfigError(f"--checkpoint {checkpoint} does not fit {name}: {err}") from None
    metadata = {
        "model_name": model.model_name,
        "paper": card.paper,
        "input_size": [kwargs["in_chans"], size, size],
        "mean": list(card.mean),
        "std": list(card.std),
        "crop_pct": card.crop_pct,
        "lightnets_version": lightnets.__version__,
    }
    if class_names is not None:
        metadata["class_names"] = class_names
    return model.eval(), size, metadata


def export_torchscript(
    model: nn.Module, path: Path, in_chans: int, size: int, reference: nn.Module, rtol: float
) -> float:
    """torch.jit.trace to `path`, reloaded and checked against `reference` at batches 1 and 3."""
    import warnings

    from lightnets.deploy.onnx import relative_error

    with torch.no_grad(), warnings.catch_warnings():
        # shape checks and TF padding become constants: right for this input size, which is
        # fixed in the file anyway; the batch axis stays free and is checked below
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, torch.randn(2, in_chans, size, size), check_trace=False)
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path))
    error = 0.0
    for batch in (1, 3):
        x = torch.randn(batch, in_chans, size, size)
        with torch.no_grad():
            error = max(error, relative_error(loaded(x), reference(x)))
    if error > rtol:
        raise ConfigError(f"TorchScript output differs: relative error {error:.2e} > {rtol:.0e}")
    return error


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = Path(args.output)
    check_writable(path, "-o")
    model, size, metadata = build(args.model, args.checkpoint, args.resolution)
    deployed = model
    if args.reparameterize:
        from lightnets.deploy import reparameterize

        deployed = reparameterize(model)
        print(f"re-parameterized: {deployed.reparam_report.summary()}")
    metadata["reparameterized"] = args.reparameterize
    in_chans = metadata["input_size"][0]
    if args.format == "onnx":
        from lightnets.deploy.onnx import export_onnx, op_counts

        dynamo = None if args.exporter == "auto" else args.exporter == "dynamo"
        error = export_onnx(
            deployed,
            path,
            size,
            args.opset,
            metadata=metadata,
            in_chans=in_chans,
            reference=model,
            rtol=args.rtol,
            dynamo=dynamo,
        )
        ops = sorted(op_counts(path).items(), key=lambda kv: -kv[1])
        print("ops: " + ", ".join(f"{op} {n}" for op, n in ops))
        runtime = "onnxruntime"
    else:
        error = export_torchscript(deployed, path, in_chans, size, model, args.rtol)
        runtime = "TorchScript"
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, input (N, {in_chans}, {size}, {size}))"
        f"; {runtime} vs PyTorch: relative error {error:.1e} <= {args.rtol:.0e}"
    )
    return 0
