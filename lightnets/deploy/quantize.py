"""Post-training static int8 quantization, each runtime with its own quantizer, and the layers a
mixed-precision export keeps in float.

- ONNX Runtime: `quantize_onnx`, onnxruntime.quantization.quantize_static on a `quant_pre_process`ed
  file: QDQ format, uint8 activations (MLAS's x86 int8 kernels are u8 x s8) and int8 weights per
  output channel, MinMax calibration.
- OpenVINO, and ONNX Runtime by NNCF (`--quantizer nncf`): lightnets.deploy.quantize_nncf.

Both take the calibration images as preprocessed float batches (lightnets.deploy.calibration: the
model's own eval preprocessing, the same as `lightnets eval`). The model is re-parameterized
before it is exported (BatchNorm folded into the conv before it, lightnets.deploy.reparam), so the
quantizer sees one conv with folded weights, never a BatchNorm.

Mixed precision: `float_nodes(graph, kinds)` finds the layers of each kind in a runtime's graph
(`onnx_graph`, `openvino_graph`: one small structural view of both) and the quantizer leaves them in
float (ORT: nodes_to_exclude; NNCF: ignored_scope). Kinds (KEEP_FLOAT):

    se        squeeze-and-excitation: pool, reduce/expand convs, their activation, gate and product
    act       activations that are not piecewise linear (SiLU/swish as x * sigmoid(x), hard-swish,
              hard-sigmoid, sigmoid); ReLU and ReLU6 fold into the int8 conv's output range anyway
    dw        every depthwise conv;  dw-large: those with kernels larger than 3x3
    first     the first conv (the stem);  last: the last conv or linear layer (the classifier)
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from torch import Tensor

# calibration images and the report: in their own modules, re-exported here where they were first
from lightnets.deploy.calibration import (  # noqa: F401
    as_batches,
    calibration_batches,
    calibration_files,
    default_calibration_dir,
)
from lightnets.deploy.quant_graph import (  # noqa: F401
    QuantReport,
    float_nodes,
    onnx_graph,
    onnx_input_name,
    require_module,
)
from lightnets.errors import ConfigError

# ------------------------------------------------------------------ exact int8 grids


def weight_grid(weight: np.ndarray, tol: float = 1e-5, qmax: int = 127) -> list[int] | None:
    """Per output channel, the smallest D <= qmax such that every weight is an integer multiple
    of max|w| / D, or None when some channel has no such D (learned weights never do).

    Fixed kernels have one: Sobel {1, 2} -> D 2, Laplacian {1, 4} -> 4, {1, 8} -> 8, Roberts and
    identity -> 1. Symmetric per-channel quantization maps max|w| to qmax (127 for int8, 63 for
    7-bit weights), which is exact only when D divides qmax; scale max|w| / (D * (qmax // D))
    puts every weight on the grid."""
    rows = weight.reshape(weight.shape[0], -1).astype(np.float64)
    peak = np.abs(rows).max(1, keepdims=True)
    ratios = rows / np.where(peak > 0, peak, 1.0)
    grid = np.zeros(len(rows), dtype=int)
    for d in range(1, qmax + 1):
        scaled = ratios * d
        fits = (np.abs(scaled - np.round(scaled)) <= tol * d).all(1) & (grid == 0)
        grid[fits] = d
        if (grid > 0).all():
            return grid.tolist()
    return None


def exact_weight_overrides(model, qmax: int = 127) -> dict[str, list[dict]]:
    """onnxruntime TensorQuantOverrides that quantize every depthwise conv weight lying on a
    small integer grid (`weight_grid`: VGNet's fixed edge kernels) exactly, per channel."""
    from onnx import numpy_helper

    weights = {t.name: t for t in model.graph.initializer}
    overrides = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in weights:
            continue
        w = numpy_helper.to_array(weights[node.input[1]])
        if w.ndim != 4 or w.shape[1] != 1:  # depthwise only: where fixed kernels live
            continue
        grid = weight_grid(w, qmax=qmax)
        if grid is None or all(qmax % d == 0 for d in grid):  # none, or exact at max -> qmax
            continue
        peak = np.abs(w.reshape(w.shape[0], -1)).max(1)
        channels = [
            {"scale": np.float32(p / (d * (qmax // d)) if p > 0 else 1.0), "zero_point": np.int8(0)}
            for p, d in zip(peak, grid)
        ]
        channels[0]["axis"] = 0
        overrides[node.input[1]] = channels
    return overrides


# ------------------------------------------------------------------ ONNX Runtime


# The settings `quantize_onnx` uses unless told otherwise; docs/deploy.md has the measurements
# behind each one.
ORT_DEFAULTS = {"format": "qdq", "per_channel": True, "activations": "uint8"}


class _DropQuantizerWarnings(logging.Filter):
    """onnxruntime.quantization logs through the root logger, e.g. one "Axis 1 is out-of-range"
    line per calibration tensor of a BatchNorm that could not be folded (VGNet); none of it is
    actionable for a user of lightnets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname or record.levelno >= logging.ERROR


@contextlib.contextmanager
def _quiet_quantizer():
    root, flt = logging.getLogger(), _DropQuantizerWarnings()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _reader(quantization, batches: list[np.ndarray], name: str):
    """The calibration batches as onnxruntime's CalibrationDataReader feeding input `name`."""

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {name: x.astype(np.float32)}

    return Reader()


def quantize_onnx(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    calibration: Iterable[Tensor],
    keep_float: Iterable[str] = (),
    *,
    quant_format: str = "qdq",
    activations: str = "uint8",
    extra_options: dict | None = None,
    exact_grids: bool = True,
    reduce_range: bool = True,
    calibration_method: str = "minmax",
) -> QuantReport:
    """Quantize the float ONNX file `src` to int8 at `dst` with onnxruntime's own quantizer.

    Args:
        calibration: preprocessed NCHW float32 batches (`calibration_batches`).
        keep_float: KEEP_FLOAT kinds left in float (nodes_to_exclude).
        quant_format: "qdq" (QuantizeLinear/DequantizeLinear pairs that ORT fuses into int8
            kernels) or "qoperator" (QLinearConv etc. written out).
        activations: "uint8" (MLAS's x86 kernels) or "int8".
        extra_options: passed to quantize_static on top of the defaults.
        exact_grids: quantize weights that lie on a small integer grid (fixed edge kernels)
            exactly (`exact_weight_overrides`).
        reduce_range: 7-bit weights. x86 CPUs without VNNI (AVX2, AVX-512F) multiply u8 x s8
            with VPMADDUBSW, whose 16-bit pair sums saturate: measured here, a MobileNetV2 whose
            QDQ simulation keeps logit cosine 0.997 fell to 0.65 in the int8 kernels; with 7-bit
            weights the kernels match the simulation (0.993). An artifact does not know which
            CPU will run it, so this is on by default (docs/deploy.md).
    """
    quantization = require_module("onnxruntime.quantization", "onnx")
    import onnx

    settings = _ort_settings(quantization, quant_format, activations, calibration_method)
    settings["reduce_range"] = reduce_range
    batches = as_batches(calibration)
    with tempfile.TemporaryDirectory(prefix="lightnets-quant-") as tmp:
        prepared = _prepared(src, Path(tmp) / "prepared.onnx")
        proto = onnx.load(str(prepared))
        kept = float_nodes(onnx_graph(proto), keep_float)
        exact = exact_weight_overrides(proto, 63 if reduce_range else 127) if exact_grids else {}
        options = _ort_options(extra_options, exact)
        with _quiet_quantizer():
            quantization.quantize_static(
                str(prepared),
                str(dst),
                _reader(quantization, batches, onnx_input_name(proto)),
                nodes_to_exclude=sorted({n for names in kept.values() for n in names}),
                extra_options=options,
                **settings,
            )
    described = {
        "format": quant_format,
        "activations": activations,
        "weights": "int7" if reduce_range else "int8",
        "calibration": calibration_method,
    }
    return QuantReport("onnxruntime", kept, _report_options(described, options, exact))


def _prepared(src: str | os.PathLike, dst: Path) -> Path:
    """`src` after shape inference and ORT's basic graph optimizations, as quantize_static
    expects it, at `dst`."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    return dst


def _ort_settings(
    quantization, quant_format: str, activations: str, calibration_method: str
) -> dict:
    """quantize_static's settings: int8 weights per output channel, and the format, activation
    type and calibration method quantize_onnx names; ConfigError for an unknown name."""
    formats = {"qdq": quantization.QuantFormat.QDQ, "qoperator": quantization.QuantFormat.QOperator}
    types = {"uint8": quantization.QuantType.QUInt8, "int8": quantization.QuantType.QInt8}
    methods = {
        "minmax": quantization.CalibrationMethod.MinMax,
        "percentile": quantization.CalibrationMethod.Percentile,
        "entropy": quantization.CalibrationMethod.Entropy,
    }
    if calibration_method not in methods:
        raise ConfigError(f"calibration_method must be one of {', '.join(methods)}")
    if quant_format not in formats or activations not in types:
        raise ConfigError(f"quant_format {quant_format!r} / activations {activations!r}")
    return {
        "per_channel": True,
        "weight_type": quantization.QuantType.QInt8,
        "quant_format": formats[quant_format],
        "activation_type": types[activations],
        "calibrate_method": methods[calibration_method],
    }


def _report_options(described: dict, options: dict, exact: dict) -> dict:
    """The QuantReport's options: the settings `described`, the extra options but the weight
    overrides, and how many weights were put on their exact grid."""
    report = {**described, **{k: v for k, v in options.items() if k != "TensorQuantOverrides"}}
    return {**report, "exact_grid_weights": len(exact)} if exact else report


def _ort_options(extra_options: dict | None, exact: dict[str, list[dict]]) -> dict:
    """quantize_static's extra_options: the calibration defaults, the caller's, and the exact
    weight grids as TensorQuantOverrides (the caller's overrides win)."""
    # per-batch ranges averaged (NNCF's default is the mean of per-batch min/max): global
    # extremes let a few outlier activations stretch a tensor's grid; on a CIFAR MixNet-S
    # this took top-1 agreement with fp32 from 67% to 89% (docs/deploy.md)
    options = {"CalibMovingAverage": True, "CalibMovingAverageConstant": 0.1}
    options.update(extra_options or {})
    if exact:
        options["TensorQuantOverrides"] = {**exact, **options.get("TensorQuantOverrides", {})}
    return options


def onnx_quantizer(name: str):
    """The function that writes an int8 ONNX file for onnxruntime, by `--quantizer` name:
    "ort" (`quantize_onnx`, onnxruntime's own) or "nncf" (`quantize_nncf.quantize_onnx_nncf`)."""
    if name == "ort":
        return quantize_onnx
    if name == "nncf":
        from lightnets.deploy.quantize_nncf import quantize_onnx_nncf

        return quantize_onnx_nncf
    raise ConfigError(f"--quantizer {name!r}: one of ort, nncf")
