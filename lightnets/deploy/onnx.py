"""ONNX export that is checked by running it: onnxruntime must reproduce PyTorch's output.

`export` and `load` are this module's deployment target (lightnets.deploy.targets): fp32, fp16
(weights and activations in float16, inputs and outputs kept float32) and int8 (onnxruntime's
own static quantizer, lightnets.deploy.quantize).

Exporter choice: opset <= 17 uses the TorchScript-based exporter (`dynamo=False`), opset >= 18
the torch.export-based one; `dynamo=` overrides. With torch 2.13 the torch.export-based exporter
writes opset 18 even when asked for less (it cannot down-convert ReduceMean), while the
TorchScript-based one writes the opset asked for and exports faster. Both give a dynamic batch
axis and graphs that ONNX Runtime runs at the same speed. Measured in docs/deploy.md, section
"ONNX exporter".
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from lightnets._deprecation import renamed_kwargs
from lightnets.deploy.checks import relative_error
from lightnets.deploy.loaders import ort_session
from lightnets.errors import ConfigError, import_optional
from lightnets.files import check_writable

INPUT, OUTPUT = "input", "output"


def _require_onnx():
    return (
        import_optional("onnx", "onnx", "ONNX export"),
        import_optional("onnxruntime", "onnx", "ONNX export"),
    )


# the opsets torch.onnx exports (TorchScript-based up to 20, dynamo from 18)
OPSETS = range(7, 24)


def check_opset(opset: int) -> int:
    if opset not in OPSETS:
        raise ConfigError(f"opset must be between {OPSETS[0]} and {OPSETS[-1]}, got {opset}")
    return opset


def _size(img_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
        raise ConfigError(f"img_size must be a positive int or (H, W), got {img_size!r}")
    return size


@renamed_kwargs(input_size="img_size")
def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    img_size: int | tuple[int, int],
    opset: int = 17,
    dynamic_batch: bool = True,
    metadata: dict | None = None,
    *,
    in_chans: int | None = None,
    reference: nn.Module | None = None,
    rtol: float = 1e-4,
    dynamo: bool | None = None,
) -> float:
    """Export `model` (eval mode) to `path` and check it with onnxruntime; returns the error.

    Args:
        img_size: the side (or (H, W)) of the example input; the batch axis stays dynamic.
        metadata: written into the file's metadata_props; non-string values as JSON.
        in_chans: input channels (default: `model.in_chans`, else 3).
        reference: the model whose output the file must match (default `model`); pass the
            trained model when exporting its re-parameterized copy.
        rtol: largest accepted `relative_error` of onnxruntime vs PyTorch on a random batch.
        dynamo: exporter; None picks by opset (see the module docstring).

    Raises ValueError when the parity check fails (the file is kept for inspection).
    """
    onnx, _ = _require_onnx()
    h, w = _size(img_size)
    check_opset(opset)
    path = Path(path)
    check_writable(path)
    in_chans = in_chans or getattr(model, "in_chans", 3)
    was_training = model.training
    model.eval()
    try:
        example = torch.randn(2, in_chans, h, w)  # batch 2: torch.export specialises a batch of 1
        write_onnx(model, example, path, opset, dynamic_batch, dynamo)
    finally:
        model.train(was_training)
    if metadata:
        set_metadata(path, metadata)
    error = onnx_parity(path, reference if reference is not None else model, (in_chans, h, w))
    if error > rtol:
        raise ConfigError(
            f"onnxruntime output differs from PyTorch: relative error {error:.2e} > {rtol:.0e} "
            f"({path})"
        )
    return error


def write_onnx(
    model: nn.Module,
    example: Tensor,
    path: str | os.PathLike,
    opset: int = 17,
    dynamic_batch: bool = True,
    dynamo: bool | None = None,
) -> Path:
    """Trace `model` on `example` and write it to `path`: the one call of torch.onnx.export.

    No parity check: `export_onnx` adds one, and the profiler's runners
    (lightnets.deploy.artifacts.make_runner) check what they build. `dynamo=None` picks the
    exporter by opset (see the module docstring).
    """
    dynamo = opset >= 18 if dynamo is None else dynamo
    kwargs = {}
    if dynamo:
        if dynamic_batch:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    elif dynamic_batch:
        kwargs["dynamic_axes"] = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter announces its deprecation; the choice is deliberate here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # input-size checks are frozen for the exported size, which the file fixes anyway
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT],
            output_names=[OUTPUT],
            opset_version=opset,
            dynamo=dynamo,
            **kwargs,
        )
    return Path(path)


def onnx_parity(
    path: str | os.PathLike, reference: nn.Module, input_shape: tuple[int, int, int]
) -> float:
    """Worst `relative_error` of onnxruntime vs `reference` over random batches of 1 and 3 (so a
    batch axis that was not really exported as dynamic fails here)."""
    session = ort_session(path, threads=1)  # a few small batches: threads only contend
    was_training = reference.training
    reference.eval()
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    try:
        for batch in (1, 3):
            x = torch.randn(batch, *input_shape, generator=generator)
            with torch.no_grad():
                expected = reference(x)
            (actual,) = session.run([OUTPUT], {INPUT: x.numpy()})
            if tuple(actual.shape) != tuple(expected.shape):
                raise ConfigError(
                    f"onnxruntime output shape {tuple(actual.shape)} != PyTorch "
                    f"{tuple(expected.shape)} at batch {batch} ({path})"
                )
            worst = max(worst, relative_error(actual, expected))
    finally:
        reference.train(was_training)
    return worst


def op_counts(path: str | os.PathLike) -> dict[str, int]:
    """How many nodes of each op type the file's main graph holds."""
    onnx, _ = _require_onnx()
    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def set_metadata(path: str | os.PathLike, metadata: dict) -> None:
    """Write `metadata` into the file's metadata_props (non-string values as JSON)."""
    onnx, _ = _require_onnx()
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(path))


# ------------------------------------------------------------------ deployment target


def export(
    model: nn.Module,
    path: Path,
    example: Tensor,
    precision: str,
    calibration,
    metadata: dict,
) -> Path:
    """Write `model` as an ONNX file for onnxruntime in `precision` (fp32, fp16 or int8).

    `metadata["onnx"]` holds write_onnx's options (opset, dynamo) where not the defaults; int8
    uses `metadata["keep_float"]` (lightnets.deploy.quant_graph.KEEP_FLOAT kinds) and
    `metadata["quantize"]` (keyword arguments of quantize_onnx), and adds what the quantizer
    left in float to `metadata["quantization"]`. Verification is the caller's
    (lightnets.deploy.checks.verify_artifact)."""
    import tempfile

    onnx, _ = _require_onnx()
    path = Path(path)
    check_writable(path)
    model.eval()
    options = metadata.get("onnx", {})  # opset, dynamo: write_onnx's keyword arguments
    if precision == "fp32":
        write_onnx(model, example, path, **options)
    elif precision in ("fp16", "int8"):
        with tempfile.TemporaryDirectory(prefix="lightnets-onnx-") as tmp:
            float_path = write_onnx(model, example, Path(tmp) / "float.onnx", **options)
            if precision == "fp16":
                from onnxruntime.transformers.float16 import convert_float_to_float16

                # float32 in and out, so a caller feeds the same arrays to every precision
                half = convert_float_to_float16(onnx.load(str(float_path)), keep_io_types=True)
                onnx.save(half, str(path))
            else:
                from lightnets.deploy.quantize import onnx_quantizer

                if calibration is None:
                    raise ConfigError("int8 needs calibration images")
                options = dict(metadata.get("quantize", {}))
                quantize = onnx_quantizer(options.pop("quantizer", "ort"))
                report = quantize(
                    float_path, path, calibration, metadata.get("keep_float", ()), **options
                )
                metadata["quantization"] = report.to_dict()
    else:
        raise ConfigError(f"onnxruntime exports fp32, fp16 or int8, not {precision!r}")
    set_metadata(path, metadata)
    return path
